"""Least-privilege reads in the engine: reader × object, written out as a table (`engine.access`).

The table is the specification of engine/access.py's docstring, one row per reason an expert may
(or may not) read a task, a case or a customer, each object built so that only that reason holds:
a supervisor-role task assigned to the expert (only "assigned" lets her in), one she completed
while it stayed assigned to a colleague (only "completed"), one in a case of her customer (only
"responsible"), and so on. The web table (tests/webui/test_least_privilege.py) checks the pages;
this one checks every rule on its own, faster, so a rule dropped or inverted fails here by name.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from engine import access, customers, inbox, runtime, users
from engine.models import Customer, Instance, Task, TaskStatus, Variable

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ME = access.Reader.of("oma", ["expert"])
BIG = 5000  # an order over 1000 goes on to "approve" (candidate role supervisor) after "review" (expert)


def _business_id(n: int) -> str:
    digits = f"{1000000 + n:07d}"
    total = sum(int(d) * w for d, w in zip(digits, (7, 9, 10, 5, 8, 4, 2), strict=True)) % 11
    assert total != 1, n
    return f"{digits}-{0 if total == 0 else 11 - total}"


class _World:
    """Builds objects through the engine API and names them."""

    def __init__(self, s):
        self.s, self.n = s, 0
        self.tasks: dict[str, str] = {}
        self.cases: dict[str, int] = {}
        self.customers: dict[str, int] = {}

    def customer(self, name: str, responsible: str | None) -> str:
        self.n += 1
        while True:
            try:
                key = _business_id(self.n)
                break
            except AssertionError:
                self.n += 1
        row = customers.create_customer(self.s, {"name": name, "business_id": key}, by="t")
        row.responsible_expert = responsible  # any value, also one the customer form would refuse
        self.customers[name] = row.id
        return key

    def case(self, name: str, *, customer: str | None = None) -> tuple[int, str]:
        key = self.customer(f"{name} Oy", customer) if customer is not None else None
        instance = runtime.start_instance(self.s, "order", by="t", data={"customer": name, "amount": BIG},
                                          business_key=key, now=T0)
        [review] = inbox.tasks(self.s, instance_id=instance.id)
        self.cases[name] = instance.id
        return instance.id, review.id

    def at_approve(self, name: str, *, customer: str | None = None, reviewed_by: str = "muu") -> str:
        """A case past its review (by `reviewed_by`), waiting on the supervisor-role "approve" task."""
        iid, review = self.case(name, customer=customer)
        runtime.complete_task(self.s, review, {"channel": "phone"}, by=reviewed_by, now=T0)
        [approve] = inbox.tasks(self.s, instance_id=iid)
        assert approve.candidate_role == "supervisor"
        return approve.id


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from engine import deploy as deploy_mod
    from engine.db import make_engine, make_sessions, upgrade

    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('access')}/t.db")
    upgrade(engine)
    sessions = make_sessions(engine)
    runtime.forget_cache()
    with sessions.begin() as s:
        deploy_mod.deploy_files(s, {"order.bpmn": (_MODELS / "order.bpmn").read_bytes()}, by="t")
        for name, roles in (("oma", ["expert"]), ("muu", ["expert"]), ("vanha", ["expert"]),
                            ("esimies", ["supervisor"])):
            users.add_user(s, name, "salasana-123", roles)
        users.set_profile(s, "vanha", active=False)
        w = _World(s)
        # tasks: each readable by oma for one reason only (or for none)
        w.tasks["assigned to her"] = t = w.at_approve("assigned")
        inbox.assign(s, t, "oma", by="esimies")
        w.tasks["completed by her, still a colleague's"] = t = w.at_approve("completed")
        inbox.assign(s, t, "muu", by="esimies")
        runtime.complete_task(s, t, {"approved": True}, by="oma", now=T0)  # no roles: an operator
        w.tasks["in a case of her customer"] = w.at_approve("responsible customer", customer="oma")
        w.tasks["in a case she is responsible for"] = t = w.at_approve("responsible variable")
        s.add(Variable(instance_id=w.cases["responsible variable"], name="responsible_expert", value="oma",
                       updated_at=T0))
        w.tasks["of her role, unassigned"] = w.case("free review")[1]
        w.tasks["of her role, a colleague's"] = t = w.case("colleague review")[1]
        inbox.claim(s, t, by="muu", roles={"expert"})
        w.tasks["of her role, a colleague's, in a case she worked on"] = t = w.case("worked on")[1]
        inbox.claim(s, t, by="muu", roles={"expert"})
        s.add(Task(id="earlier-step-of-worked-on", instance_id=w.cases["worked on"], element_id="earlier",
                   process_id="order", name="Earlier step", state=TaskStatus.COMPLETED, completed_at=T0,
                   completed_by="oma"))  # another task of the case, hers: the case is hers to see
        w.tasks["of another role, nobody's"] = w.at_approve("other")
        w.tasks["of another role, a colleague's"] = t = w.at_approve("colleague's approve")
        inbox.assign(s, t, "muu", by="esimies")
        w.tasks["of another role, done by a colleague"] = t = w.at_approve("done by colleague")
        runtime.complete_task(s, t, {"approved": True}, by="muu", now=T0)
        w.tasks["in a colleague's customer's case"] = w.at_approve("colleague's customer", customer="muu")
        w.tasks["in a case naming her in another variable"] = w.at_approve("named elsewhere")
        s.add(Variable(instance_id=w.cases["named elsewhere"], name="contact_person", value="oma", updated_at=T0))
        w.tasks["in a case a colleague is responsible for"] = w.at_approve("colleague's by variable")
        s.add(Variable(instance_id=w.cases["colleague's by variable"], name="responsible_expert", value="muu",
                       updated_at=T0))
        iid, _review = w.case("cancelled")  # its review of her role, never taken, is cancelled with the case
        runtime.cancel_instance(s, iid, by="esimies", reason="test", now=T0)
        # customers with no cases
        for name, responsible in (("own", "oma"), ("colleague's", "muu"), ("inactive expert's", "vanha"),
                                  ("supervisor's", "esimies"), ("unknown user's", "haamu"), ("nobody's", None)):
            w.customer(f"{name} customer", responsible)
        # a colleague's customer whose case waits on a task of her role
        key = w.customer("colleague's, with a case she may take", "muu")
        runtime.start_instance(s, "order", by="t", data={"customer": "xy", "amount": BIG}, business_key=key, now=T0)
    yield sessions, w
    runtime.forget_cache()
    engine.dispose()


_MODELS = __import__("pathlib").Path(__file__).parent / "bpmn"

TASKS = {  # oma (expert) reads the task page?
    "assigned to her": True,
    "completed by her, still a colleague's": True,
    "in a case of her customer": True,
    "in a case she is responsible for": True,
    "of her role, unassigned": True,
    "of her role, a colleague's": True,  # her group's work: readable, without the case's data
    "of her role, a colleague's, in a case she worked on": True,  # with the case's data
    "of another role, nobody's": False,
    "of another role, a colleague's": False,
    "of another role, done by a colleague": False,
    "in a colleague's customer's case": False,
    "in a case naming her in another variable": False,  # only `responsible_expert` makes her responsible
    "in a case a colleague is responsible for": False,
}
CASES = {  # oma sees the case's data?
    "assigned": True,  # a task of it is hers
    "completed": True,  # she completed a task of it
    "responsible customer": True,
    "responsible variable": True,
    "free review": True,  # it waits on an unassigned task of her role
    "colleague review": False,  # its task of her role is a colleague's
    "worked on": True,  # the same, but another task of it she completed
    "other": False,
    "colleague's approve": False,
    "done by colleague": False,
    "colleague's customer": False,
    "named elsewhere": False,
    "colleague's by variable": False,
    "cancelled": False,  # an unassigned task of her role that no longer waits does not open the case
}
CUSTOMERS = {  # oma opens the customer page?
    "own customer": True,
    "colleague's customer": False,
    "inactive expert's customer": True,  # no active responsible expert: any expert may take it
    "supervisor's customer": True,  # the responsible one is no expert
    "unknown user's customer": True,
    "nobody's customer": True,
    "colleague's, with a case she may take": True,
    "responsible customer Oy": True,
    "colleague's customer Oy": False,
}


@pytest.mark.parametrize("what", sorted(TASKS))
def test_an_expert_reads_a_task_for_exactly_the_reasons_written(world, what):
    sessions, w = world
    with sessions.begin() as s:
        listed = set(s.scalars(select(Task.id).join(Instance, Instance.id == Task.instance_id)
                               .where(access.task_clause(ME))))
        assert (w.tasks[what] in listed) is TASKS[what], what


@pytest.mark.parametrize("what", sorted(TASKS))
def test_the_task_page_reads_a_task_its_case_and_whether_the_case_is_readable_in_one_statement(world, what):
    sessions, w = world
    with sessions.begin() as s:
        if not TASKS[what]:  # refused as if it did not exist, the message naming what was asked for
            with pytest.raises(access.TaskNotFound, match=f"^no task {w.tasks[what]}$"):
                access.readable_task(s, ME, w.tasks[what])
            return
        task, instance, case_readable = access.readable_task(s, ME, w.tasks[what])
        assert (task.id, instance.id) == (w.tasks[what], task.instance_id)
        assert case_readable is access.can_read_instance(s, ME, instance.id), what
        supervisor = access.Reader.of("someone", ["supervisor"])
        assert access.readable_task(s, supervisor, w.tasks[what])[2] is True


@pytest.mark.parametrize("what", sorted(CASES))
def test_an_expert_sees_a_case_for_exactly_the_reasons_written(world, what):
    sessions, w = world
    with sessions.begin() as s:
        assert access.can_read_instance(s, ME, w.cases[what]) is CASES[what], what


@pytest.mark.parametrize("what", sorted(CUSTOMERS))
def test_an_expert_opens_a_customer_for_exactly_the_reasons_written(world, what):
    sessions, w = world
    with sessions.begin() as s:
        assert access.can_read_customer(s, ME, w.customers[what]) is CUSTOMERS[what], what
        listed = set(s.scalars(select(Customer.id).where(access.customer_clause(ME))))
        assert (w.customers[what] in listed) is CUSTOMERS[what], what
        if CUSTOMERS[what]:
            access.require_customer(s, ME, w.customers[what])
            assert access.readable_customer(s, ME, w.customers[what]).id == w.customers[what]
        else:  # refused as if it did not exist
            with pytest.raises(access.CustomerNotFound, match=f"^No customer {w.customers[what]}.$"):
                access.require_customer(s, ME, w.customers[what])
            with pytest.raises(access.CustomerNotFound, match=f"^No customer {w.customers[what]}.$"):
                access.readable_customer(s, ME, w.customers[what])


@pytest.mark.parametrize("role", sorted(access.READ_ALL_ROLES))
def test_supervisors_auditors_and_admins_read_everything(world, role):
    sessions, w = world
    reader = access.Reader.of("someone", [role])
    with sessions.begin() as s:
        assert [access.readable_task(s, reader, t)[0].id for t in w.tasks.values()] == list(w.tasks.values())
        with pytest.raises(access.TaskNotFound, match="^no task no-such-task$"):
            access.readable_task(s, reader, "no-such-task")
        assert all(access.can_read_instance(s, reader, i) for i in w.cases.values())
        assert all(access.can_read_customer(s, reader, c) for c in w.customers.values())
        assert [access.readable_customer(s, reader, c).id for c in w.customers.values()] == list(w.customers.values())
        with pytest.raises(access.CustomerNotFound, match="^No customer 987654.$"):
            access.readable_customer(s, reader, 987654)


def test_a_reader_without_roles_reads_only_what_is_theirs(world):
    sessions, w = world
    nobody = access.Reader.of("oma", [])
    with sessions.begin() as s:
        assert access.readable_task(s, nobody, w.tasks["assigned to her"])[0].id == w.tasks["assigned to her"]
        with pytest.raises(access.TaskNotFound):
            access.readable_task(s, nobody, w.tasks["of her role, unassigned"])
        assert not access.can_read_instance(s, nobody, w.cases["free review"])


def test_the_world_is_as_described(world):
    """Guard the table's premises: the states the rows rely on are really there."""
    sessions, w = world
    with sessions.begin() as s:
        done = s.get(Task, w.tasks["completed by her, still a colleague's"])
        assert (done.state, done.completed_by, done.assignee) == (TaskStatus.COMPLETED, "oma", "muu")
        assert s.get(Task, w.tasks["assigned to her"]).assignee == "oma"
        assert s.get(Task, w.tasks["of another role, nobody's"]).assignee is None
        assert s.get(Customer, w.customers["own customer"]).responsible_expert == "oma"
        assert not users.get_user(s, "vanha").active


def _columns(row, model) -> dict:
    return {c.key: getattr(row, c.key) for c in model.__table__.columns}


def test_the_task_pages_rows_are_the_sessions_objects_as_the_orm_would_load_them(world):
    """`readable_task` reads on the cursor (engine.fastsql): the rows must be what `session.get` gives."""
    sessions, w = world
    tid = w.tasks["assigned to her"]
    with sessions() as fresh:
        loaded_task = fresh.get(Task, tid)
        expected = _columns(loaded_task, Task), _columns(fresh.get(Instance, loaded_task.instance_id), Instance)
    with sessions() as s:
        task, instance, _readable = access.readable_task(s, ME, tid)
        assert (_columns(task, Task), _columns(instance, Instance)) == expected
        assert task.created_at.tzinfo is not None and instance.started_at.tzinfo is not None
        assert s.get(Task, tid) is task and s.get(Instance, task.instance_id) is instance  # persistent, not copies
        assert access.readable_task(s, ME, tid)[0] is task  # read again: the object the session holds
        task.name = "changed, not flushed"
        assert access.readable_task(s, ME, tid)[0].name == "changed, not flushed"  # a change is kept
        s.flush()
        assert s.scalar(select(Task.name).where(Task.id == tid)) == "changed, not flushed"  # and written as an update
        s.rollback()


def test_a_change_not_yet_flushed_counts_in_the_check(world):
    sessions, w = world
    tid = w.tasks["of another role, nobody's"]
    with sessions() as s:
        with pytest.raises(access.TaskNotFound):
            access.readable_task(s, ME, tid)
        s.get(Task, tid).assignee = "oma"  # in this session only: flushed before the check reads
        assert access.readable_task(s, ME, tid)[0].assignee == "oma"
        s.rollback()


def test_any_of_several_roles_lets_a_reader_take_a_task_of_that_role(world):
    sessions, w = world
    free = w.tasks["of her role, unassigned"]
    with sessions() as s:
        assert access.readable_task(s, access.Reader.of("vieras", ["auditor-in-training", "expert"]), free)[0].id == free
        assert access.can_read_instance(s, access.Reader.of("vieras", ["expert", "zz"]), w.cases["free review"])
        with pytest.raises(access.TaskNotFound):
            access.readable_task(s, access.Reader.of("vieras", ["auditor-in-training", "zz"]), free)
        assert not access.can_read_instance(s, access.Reader.of("vieras", ["zz"]), w.cases["free review"])
