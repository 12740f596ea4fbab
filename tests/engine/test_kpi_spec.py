"""The supervisor figures, worklists and the aftercare dashboard, each stated from what a supervisor reads.

Every case is a real instance in a real database; the tasks and variables the figures read are the
rows the runtime writes for the shipped aftercare model (element ids `aftercare_contact` and
`hold_follow_up_day`, the contract's variable names), written here directly so that each test holds
exactly the rows it names. "On time" is the contract's: contacted on or before
`service_ended_on + aftercare_target_days` (Helsinki days); open and overdue the day after.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import delete

from engine import audit, kpi, runtime
from engine.models import Customer, Instance, Task, TaskStatus, Variable

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # Monday 2 March 2026, 10:00 in Helsinki
NOW = datetime(2026, 3, 20, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def case(sessions, deploy):
    """Return make(values=..., tasks=[...]) -> instance id: an instance holding exactly those rows."""
    deploy("interrupt.bpmn")

    def make(values: dict | None = None, tasks: tuple = (), parent: int | None = None) -> int:
        with sessions.begin() as s:
            iid = runtime.start_instance(s, "interrupt", by="anna", data={"due": "P7D"}, now=T0).id
            s.execute(delete(Task).where(Task.instance_id == iid))  # only the tasks this test names
            s.execute(delete(Variable).where(Variable.instance_id == iid))
            s.add_all(Variable(instance_id=iid, name=k, value=v) for k, v in (values or {}).items())
            for n, spec in enumerate(tasks):
                element, assignee, due, *rest = spec
                state = rest[0] if rest else TaskStatus.READY
                s.add(Task(id=str(uuid.uuid4()), instance_id=iid, element_id=element, name=element,
                           state=state, assignee=assignee, due_at=due,
                           created_at=rest[1] if len(rest) > 1 else T0 + n * timedelta(seconds=1)))
            if parent is not None:
                s.get(Instance, iid).parent_instance_id = parent
        return iid

    return make


def contract(ended_on: str, target: int | None = 14, **more) -> dict:
    return {"service_ended_on": ended_on, "aftercare_target_days": target, "aftercare_started_at": T0.isoformat(),
            **more}


# --- the supervisor's loads and unassigned work -------------------------------------------------------

def test_expert_loads_count_open_and_overdue_work_per_expert(sessions, case):
    # nobody's: not in any load (written first, so that the others still count after it)
    case(contract("2026-01-01"), tasks=[("aftercare_contact", None, NOW - DAY), ("call", None, NOW - DAY)])
    # anna: a plain task overdue, one due exactly now (not yet late), one without a due time, one completed
    case(tasks=[("call", "anna", NOW - timedelta(seconds=1)), ("call", "anna", NOW), ("call", "anna", None),
                ("call", "anna", NOW - DAY, TaskStatus.COMPLETED)])
    # anna's aftercare contact past its last target day (ended 1 March + 14 = 15 March < 20 March)
    case(contract("2026-03-01"), tasks=[("aftercare_contact", "anna", NOW + DAY)])
    # anna's contacts with 20 March and 24 March as their last days: due, not overdue, though a due time passed
    case(contract("2026-03-06"), tasks=[("aftercare_contact", "anna", NOW - DAY)])
    case(contract("2026-03-10"), tasks=[("aftercare_contact", "anna", NOW + DAY)])
    # a contact anna completed, of a case long past its target: no longer her work
    case(contract("2026-01-01"), tasks=[("aftercare_contact", "anna", NOW - DAY, TaskStatus.COMPLETED)])
    # bob's follow-up day, late by its due time; a contact without a target is judged by its due time too
    case(tasks=[("hold_follow_up_day", "bob", NOW - timedelta(seconds=1))])
    case(contract("2026-03-01", target=None), tasks=[("aftercare_contact", "bob", NOW + DAY)])
    # bob's overdue contact and, in the same case, a follow-up day not yet due (judged by its own due time)
    case(contract("2026-03-01"), tasks=[("aftercare_contact", "bob", NOW + DAY), ("hold_follow_up_day", "bob", NOW + DAY)])
    with sessions.begin() as s:
        loads = kpi.expert_loads(s, NOW)
    assert [(x.assignee, x.open_tasks, x.overdue_tasks, x.aftercare_due, x.aftercare_overdue) for x in loads] == [
        ("anna", 6, 2, 2, 1), ("bob", 4, 2, 2, 2)]


def test_expert_loads_read_the_case_days_in_the_given_time_zone(sessions, case):
    now = datetime(2026, 3, 19, 22, 30, tzinfo=UTC)
    # ended 4 March in UTC (5 March in Helsinki): its last day is 18 March in UTC, so overdue on 19 March
    case(contract("2026-03-04T22:30:00+00:00"), tasks=[("aftercare_contact", "anna", now + DAY)])
    with sessions.begin() as s:
        [load] = kpi.expert_loads(s, now, "UTC")
    assert (load.aftercare_due, load.aftercare_overdue) == (0, 1)


def test_expert_loads_without_open_work_are_empty(sessions, case):
    case(tasks=[("call", "anna", NOW - DAY, TaskStatus.COMPLETED)])
    with sessions.begin() as s:
        assert kpi.expert_loads(s, NOW) == []


def test_unassigned_open_counts_tasks_nobody_holds_and_those_past_due(sessions, case):
    with sessions.begin() as s:
        assert kpi.unassigned_open(s, NOW) == (0, 0)
    case(tasks=[("call", None, NOW - timedelta(seconds=1)), ("call", None, NOW), ("call", None, None),
                ("call", None, NOW - DAY, TaskStatus.CANCELLED), ("call", "anna", NOW - DAY)])
    with sessions.begin() as s:
        assert kpi.unassigned_open(s, NOW) == (3, 1)


# --- worklists ------------------------------------------------------------------------------------------

def test_an_experts_aftercare_worklist_is_her_open_aftercare_tasks_earliest_due_first(sessions, case):
    iid = case(contract("2026-03-01"), tasks=[
        ("aftercare_contact", "anna", None, TaskStatus.READY, T0),
        ("hold_follow_up_day", "anna", NOW + 2 * DAY, TaskStatus.READY, T0 + timedelta(seconds=1)),
        ("aftercare_contact", "anna", NOW + DAY, TaskStatus.READY, T0 + timedelta(seconds=4)),
        ("hold_follow_up_day", "anna", NOW + DAY, TaskStatus.READY, T0 + timedelta(seconds=3)),
        ("aftercare_contact", "anna", NOW, TaskStatus.COMPLETED),
        ("aftercare_contact", "bob", NOW),
        ("call", "anna", NOW)])
    with sessions.begin() as s:
        rows = kpi.aftercare_tasks(s, "anna")
        assert [(t.element_id, t.due_at, i.id) for t, i in rows] == [
            ("hold_follow_up_day", NOW + DAY, iid), ("aftercare_contact", NOW + DAY, iid),
            ("hold_follow_up_day", NOW + 2 * DAY, iid), ("aftercare_contact", None, iid)]


def test_overdue_aftercare_lists_what_is_late_by_the_one_definition_most_overdue_first(sessions, case):
    late_case = case(contract("2026-03-01"), tasks=[("aftercare_contact", "anna", NOW - 3 * DAY)])
    due_case = case(contract("2026-03-06"), tasks=[("aftercare_contact", "anna", NOW - 5 * DAY)])
    no_due = case(contract("2026-02-01"), tasks=[("aftercare_contact", None, None)])
    follow = case(tasks=[("hold_follow_up_day", "bob", NOW - 4 * DAY), ("hold_follow_up_day", "bob", NOW)])
    with sessions.begin() as s:
        rows = kpi.overdue_aftercare(s, NOW)
        assert [(i.id, t.due_at) for t, i in rows] == [(follow, NOW - 4 * DAY), (late_case, NOW - 3 * DAY),
                                                       (no_due, None)]
        assert due_case not in [i.id for _t, i in rows]


def test_overdue_aftercare_breaks_ties_by_creation(sessions, case):
    second = case(contract("2026-01-01"), tasks=[("aftercare_contact", "anna", NOW - DAY, TaskStatus.READY,
                                                  T0 + timedelta(seconds=9))])
    first = case(contract("2026-01-01"), tasks=[("aftercare_contact", "anna", NOW - DAY, TaskStatus.READY, T0)])
    with sessions.begin() as s:
        assert [i.id for _t, i in kpi.overdue_aftercare(s, NOW)] == [first, second]


def test_customer_names_only_for_registered_business_ids(sessions):
    with sessions.begin() as s:
        s.add_all([Customer(business_id="0101010-1", name="Acme"), Customer(business_id="0202020-2", name="Beta")])
    with sessions.begin() as s:
        assert kpi.customer_names(s, ["0101010-1", None, "", "9999999-9"]) == {"0101010-1": "Acme"}
        assert kpi.customer_names(s, [None, ""]) == {}


def test_process_steps_show_open_tasks_and_the_aftercare_done_or_open(sessions, case):
    iid = case(tasks=[("call", "anna", None, TaskStatus.READY, T0 + timedelta(seconds=2)),
                      ("call", "anna", None, TaskStatus.COMPLETED),
                      ("aftercare_contact", "anna", None, TaskStatus.COMPLETED, T0),
                      ("hold_follow_up_day", "anna", None, TaskStatus.READY, T0 + timedelta(seconds=1)),
                      ("aftercare_contact", "anna", None, TaskStatus.CANCELLED)])
    other = case(tasks=[])
    with sessions.begin() as s:
        assert kpi.process_steps(s, []) == []
        steps = kpi.process_steps(s, [s.get(Instance, iid), s.get(Instance, other)])
        assert [x.instance.id for x in steps] == [iid, other]
        assert [(t.element_id, t.state) for t in steps[0].open_tasks] == [
            ("hold_follow_up_day", TaskStatus.READY), ("call", TaskStatus.READY)]
        assert [(t.element_id, t.state) for t in steps[0].aftercare] == [
            ("aftercare_contact", TaskStatus.COMPLETED), ("hold_follow_up_day", TaskStatus.READY)]
        assert (steps[1].open_tasks, steps[1].aftercare) == ([], [])


def test_summary_counts_this_months_contacts_from_local_midnight_of_the_first(sessions, case):
    case(contract("2026-02-20", aftercare_contacted_on="2026-03-01"), tasks=[("call", "anna", NOW - DAY)])
    case(contract("2026-02-20", aftercare_contacted_on="2026-03-10"))
    case(contract("2026-02-20", aftercare_contacted_on="2026-02-28"))
    with sessions.begin() as s:
        figures = kpi.summary(s, NOW)
        assert set(figures) == {"loads", "unassigned", "on_time", "open_rows"}
        assert figures["open_rows"] == kpi.open_aftercare(s, NOW)
        assert [(x.assignee, x.open_tasks, x.overdue_tasks) for x in figures["loads"]] == [("anna", 1, 1)]
        assert figures["unassigned"] == (0, 0)
        assert figures["on_time"] == kpi.OnTime(done=2, on_time=1, not_reached=0)


def test_summary_reads_its_figures_together_and_gives_what_each_function_gives_alone(sessions, case, statements_of):
    """`summary` reads the month's cases and the open aftercare in four statements (the variables of both
    at once, the loads and the unassigned work in one count): every figure is the one its own function gives."""
    case(contract("2026-03-01"), tasks=[("aftercare_contact", "anna", NOW + DAY)])  # overdue by its case
    case(contract("2026-03-15"), tasks=[("aftercare_contact", "eero", NOW - DAY)])  # due by its case, not its date
    case(contract("2026-02-20", aftercare_contacted_on="2026-03-05"))  # on time in March
    case(contract("2026-02-10", aftercare_contacted_on="2026-03-02"))  # late in March
    case(contract("2026-02-20", aftercare_outcome="not_reached",
                  aftercare_attempts=[{"on": "2026-03-04"}]))  # not reached in March
    case(tasks=[("call", None, NOW - DAY), ("call", None, NOW + DAY), ("hold_follow_up_day", None, NOW - DAY),
                ("call", "anna", NOW - DAY), ("hold_follow_up_day", "eero", NOW - DAY)])
    with sessions.begin() as s:
        alone = (kpi.expert_loads(s, NOW), kpi.unassigned_open(s, NOW),
                 kpi.aftercare_on_time(s, kpi.month_start(NOW), NOW), kpi.open_aftercare(s, NOW))
        with statements_of(sessions.kw["bind"]) as statements:
            figures = kpi.summary(s, NOW)
    assert len(statements) == 4, statements
    assert (figures["loads"], figures["unassigned"], figures["on_time"], figures["open_rows"]) == alone
    assert [(x.assignee, x.open_tasks, x.overdue_tasks, x.aftercare_due, x.aftercare_overdue)
            for x in figures["loads"]] == [("anna", 2, 2, 0, 1), ("eero", 2, 1, 1, 1)]
    assert figures["unassigned"] == (3, 2)
    assert figures["on_time"] == kpi.OnTime(done=2, on_time=1, not_reached=1)


def test_summary_reads_every_figure_at_its_now_in_its_time_zone(sessions, case):
    now = datetime(2026, 3, 19, 22, 30, tzinfo=UTC)  # 20 March 00:30 in Helsinki, still 19 March in UTC
    case(contract("2026-03-05"), tasks=[("aftercare_contact", "anna", now + 100 * DAY)])  # last day 19 March
    case(tasks=[("call", "anna", now + timedelta(hours=1)), ("call", None, now + timedelta(hours=1))])
    case(contract("2026-02-20", aftercare_contacted_on="2026-03-01"))  # counted from 1 March 00:00 UTC
    with sessions.begin() as s:
        figures = kpi.summary(s, now, "UTC")
        helsinki = kpi.summary(s, now)
    assert [(x.assignee, x.open_tasks, x.overdue_tasks, x.aftercare_due, x.aftercare_overdue)
            for x in figures["loads"]] == [("anna", 2, 0, 1, 0)]
    assert figures["unassigned"] == (1, 0)
    assert figures["on_time"] == kpi.OnTime(done=1, on_time=1)
    assert [(x.aftercare_due, x.aftercare_overdue) for x in helsinki["loads"]] == [(0, 1)]


def test_the_months_on_time_figure_starts_on_the_first_in_the_given_time_zone(sessions, case):
    now = datetime(2026, 3, 31, 22, 30, tzinfo=UTC)  # still 31 March in UTC, 1 April 00:30 in Helsinki
    case(contract("2026-02-20", aftercare_contacted_on="2026-03-05"))  # on time: its last day is 6 March
    with sessions.begin() as s:
        assert kpi.summary(s, now, "UTC")["on_time"] == kpi.OnTime(done=1, on_time=1)
        assert kpi.summary(s, now)["on_time"] == kpi.OnTime(done=0, on_time=0)  # April in Helsinki: none yet


# --- the aftercare case ---------------------------------------------------------------------------------------

def test_a_case_without_service_ended_on_falls_back_to_the_latest_line_end_then_the_start():
    case = kpi.AftercareCase.from_values(1, {"a_ended_on": "2026-03-01", "b_ended_on": "2026-03-05",
                                             "aftercare_started_at": "2026-03-09T10:00:00+00:00"})
    assert case.ended_on.isoformat() == "2026-03-05"
    started = kpi.AftercareCase.from_values(1, {"aftercare_started_at": "2026-03-08T23:30:00+00:00"})
    assert started.ended_on.isoformat() == "2026-03-09"  # 01:30 in Helsinki
    assert kpi.AftercareCase.from_values(1, {}).ended_on is None


@pytest.mark.parametrize("value, day", [
    ("2026-03-08T22:30:00+00:00", "2026-03-09"), ("2026-03-08T21:59:00+00:00", "2026-03-08"),
    ("2026-03-08", "2026-03-08"), ("2026-03-08T23:30:00", "2026-03-08"), ("not a date", None), ("", None),
    (17, None), (datetime(2026, 3, 8, 23, 30, tzinfo=UTC), "2026-03-09"), (datetime(2026, 3, 8, 23, 30), "2026-03-08"),
    (date(2026, 3, 8), "2026-03-08"),
])
def test_a_contact_day_is_read_in_helsinki(value, day):
    case = kpi.AftercareCase.from_values(1, {"aftercare_contacted_on": value})
    assert (case.contacted_on.isoformat() if case.contacted_on else None) == day


def test_a_target_is_a_number_of_days_not_a_flag_or_text():
    def target(value):
        return kpi.AftercareCase.from_values(1, {"aftercare_target_days": value}).target_days

    assert (target(14), target(14.0), target(True), target("14"), target(None)) == (14, 14, None, None, None)


def test_the_outcome_and_last_attempt_of_a_case():
    attempts = [{"on": "2026-03-05"}, {"on": "2026-03-09"}, {"on": "2026-03-07"}, "noise", {"on": "bad"}]
    closed = kpi.AftercareCase.from_values(1, {"aftercare_outcome": "not_reached", "aftercare_attempts": attempts,
                                               "aftercare_contacted_on": "2026-03-09", "service_line": "export"})
    assert (closed.outcome, closed.contacted_on, closed.last_attempt_on.isoformat()) == (
        "not_reached", None, "2026-03-09")
    assert (closed.reached, closed.not_reached, closed.service_line) == (False, True, "export")
    older = kpi.AftercareCase.from_values(2, {"aftercare_contacted_on": "2026-03-09", "service_line": ["a"],
                                              "aftercare_attempts": "x"})
    assert (older.outcome, older.reached, older.last_attempt_on, older.service_line) == ("reached", True, None, None)
    assert kpi.AftercareCase.from_values(3, {"aftercare_outcome": "maybe"}).outcome is None


def test_a_lines_own_end_day_counts_though_another_line_of_the_case_ended_later():
    # the days count from the line's actual end: after a training, from the training's end while other lines run on
    values = {"service_ended_on": "2026-03-01", "training_ended_on": "2026-03-01", "development_ended_on": "2026-05-01",
              "aftercare_started_at": "2026-03-02T08:00:00+00:00"}
    assert kpi.AftercareCase.from_values(1, values).ended_on == date(2026, 3, 1)


LATE_EVENING = "2026-03-08T22:30:00+00:00"  # 8 March in UTC, 9 March 00:30 in Helsinki


@pytest.mark.parametrize("values, day", [
    ({"service_ended_on": LATE_EVENING}, lambda c: c.ended_on),
    ({"export_ended_on": LATE_EVENING}, lambda c: c.ended_on),  # an older case: its line's end
    ({"aftercare_started_at": LATE_EVENING}, lambda c: c.ended_on),  # no end at all: the day aftercare started
    ({"aftercare_contacted_on": LATE_EVENING}, lambda c: c.contacted_on),
    ({"aftercare_outcome": "not_reached", "aftercare_attempts": [{"on": LATE_EVENING}]}, lambda c: c.last_attempt_on),
], ids=["service_ended_on", "line_ended_on", "aftercare_started_at", "contacted_on", "attempt"])
def test_every_day_of_a_case_is_read_in_the_given_time_zone(values, day):
    assert day(kpi.AftercareCase.from_values(1, values, "UTC")) == date(2026, 3, 8)
    assert day(kpi.AftercareCase.from_values(1, values)) == date(2026, 3, 9)


def test_a_recorded_outcome_decides_even_without_a_contact_day():
    values = {"service_ended_on": "2026-03-01", "aftercare_target_days": 14, "aftercare_outcome": "reached"}
    reached = kpi.AftercareCase.from_values(7, values)
    assert (reached.instance_id, reached.outcome, reached.reached, reached.not_reached) == (7, "reached", True, False)
    assert (reached.contacted_on, reached.days, reached.on_time) == (None, None, None)
    assert reached.overdue(date(2026, 4, 1)) is False  # a contact made is never overdue, however late
    # only a list holds attempts
    assert kpi.AftercareCase.from_values(1, {"aftercare_attempts": 3}).last_attempt_on is None
    assert kpi.AftercareCase.from_values(1, {"aftercare_attempts": {"on": "2026-03-05"}}).last_attempt_on is None


@pytest.mark.parametrize("values", [{"service_ended_on": "2026-03-01"}, {"aftercare_target_days": 14}, {}],
                         ids=["no_target", "no_end", "nothing"])
def test_an_open_case_without_an_end_day_or_a_target_is_never_overdue(values):
    case = kpi.AftercareCase.from_values(1, values)
    assert (case.outcome, case.deadline) == (None, None)
    assert case.overdue(date(2030, 1, 1)) is False


def test_today_is_the_day_of_an_instant_in_the_given_time_zone():
    midnight = datetime(2026, 3, 19, 22, 0, tzinfo=UTC)  # 20 March 00:00 in Helsinki
    assert kpi.today(midnight) == date(2026, 3, 20)
    assert kpi.today(midnight - timedelta(microseconds=1)) == date(2026, 3, 19)
    assert kpi.today(midnight, "UTC") == date(2026, 3, 19)


def test_ids_are_read_in_chunks_of_500_each_once_in_order():
    ids = list(range(1001))
    assert [len(part) for part in kpi._chunks(ids)] == [500, 500, 1]
    assert [i for part in kpi._chunks(ids) for i in part] == ids
    assert list(kpi._chunks(ids[:500])) == [ids[:500]]
    assert list(kpi._chunks([])) == []


def test_aftercare_cases_are_read_per_named_instance_from_its_own_variables(sessions, case):
    older = case({"export_ended_on": LATE_EVENING, "aftercare_target_days": 14})
    plain = case(contract("2026-03-01", aftercare_contacted_on="2026-03-10", service_line="export"))
    other = case(contract("2026-01-01", aftercare_outcome="not_reached"))  # not asked for: never read
    bare = case()  # no variables at all
    with sessions.begin() as s:
        cases = kpi.aftercare_cases(s, [plain, older, plain, bare], "UTC")
        helsinki = kpi.aftercare_cases(s, [older])
    assert list(cases) == [plain, older, bare]  # each once, in the order asked
    assert other not in cases
    assert cases[plain] == kpi.AftercareCase(plain, "export", date(2026, 3, 1), 14, date(2026, 3, 10), "reached")
    assert cases[older] == kpi.AftercareCase(older, None, date(2026, 3, 8), 14, None, None)
    assert helsinki[older].ended_on == date(2026, 3, 9)
    assert cases[bare] == kpi.AftercareCase(bare, None, None, None, None, None)


def test_the_on_time_figure_counts_contacts_and_last_attempts_of_its_period(sessions, case):
    # [1 March, 1 April) in Helsinki; a target of 14 days
    case(contract("2026-02-20", aftercare_contacted_on="2026-03-02"))  # done, on time (last day 6 March)
    case(contract("2026-03-01", aftercare_contacted_on="2026-03-15"))  # done, on time on its last day
    case(contract("2026-03-01", aftercare_contacted_on="2026-03-16"))  # done, late
    case(contract("2026-03-01", target=None, aftercare_contacted_on="2026-03-10"))  # done, no target: not on time
    case(contract("2026-02-01", aftercare_contacted_on="2026-02-27", aftercare_attempts=[{"on": "2026-03-03"}]))
    case(contract("2026-02-01", aftercare_outcome="not_reached",
                  aftercare_attempts=[{"on": "2026-03-05"}, {"on": "2026-03-20"}]))  # not reached in March
    case(contract("2026-02-01", aftercare_outcome="not_reached",
                  aftercare_attempts=[{"on": "2026-03-31"}, {"on": "2026-02-25"}]))  # its last attempt: March
    case(contract("2026-02-01", aftercare_outcome="not_reached",
                  aftercare_attempts=[{"on": "2026-02-10"}, {"on": "2026-02-25"}]))  # last attempt in February
    case(contract("2026-02-01", aftercare_outcome="not_reached"))  # no attempt: in no period
    case(contract("2026-02-01", aftercare_outcome="reached"))  # reached, no contact day: in no period
    case(contract("2026-03-01"))  # open
    march = (datetime(2026, 3, 1, tzinfo=kpi.ZoneInfo(kpi.ZONE)), datetime(2026, 4, 1, tzinfo=kpi.ZoneInfo(kpi.ZONE)))
    with sessions.begin() as s:
        assert kpi.aftercare_on_time(s, *march) == kpi.OnTime(done=4, on_time=2, not_reached=2)


def test_the_on_time_figure_reads_the_days_in_its_time_zone(sessions, case):
    # contacted 12 March 23:30 in UTC, 13 March 01:30 in Helsinki: the last day is 12 March (2 March + 10)
    case(contract("2026-03-02", target=10, aftercare_contacted_on="2026-03-12T23:30:00+00:00"))
    utc = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    with sessions.begin() as s:
        assert kpi.aftercare_on_time(s, *utc, "UTC") == kpi.OnTime(done=1, on_time=1)
        assert kpi.aftercare_on_time(s, *utc) == kpi.OnTime(done=1, on_time=0)


def test_on_time_share():
    assert kpi.OnTime(done=4, on_time=3).share == 0.75 and kpi.OnTime(4, 3).late == 1
    assert kpi.OnTime(done=0, on_time=0).share is None


# --- the aftercare dashboard ---------------------------------------------------------------------------------

def test_the_dashboard_counts_a_periods_ended_lines_and_their_contacts(sessions, case):
    march = kpi.AftercareFilter(start=datetime(2026, 3, 1, tzinfo=kpi.ZoneInfo(kpi.ZONE)),
                                end=datetime(2026, 4, 1, tzinfo=kpi.ZoneInfo(kpi.ZONE)))
    common = {"responsible_expert": "anna", "segment": "growth"}
    on_time = case(contract("2026-03-01", aftercare_contacted_on="2026-03-05", aftercare_outcome="reached",
                            aftercare_channel="phone", service_rating=5, experience_positive=True,
                            new_service_needs="export help", follow_up_due="2026-06-01", **common))
    case(contract("2026-03-02", aftercare_contacted_on="2026-03-31", aftercare_channel="visit",
                  service_rating=2, experience_positive=False, service_line=["export", "growth"], **common))
    case(contract("2026-03-03", aftercare_contacted_on="2026-03-20", aftercare_channel="phone",
                  service_rating=True, **common))  # a rating of "true" is not a rating
    case(contract("2026-03-10", aftercare_outcome="not_reached", aftercare_attempts=[{"on": "2026-03-25"}], **common))
    case(contract("2026-03-04", **common))  # open, last day 18 March: overdue on 20 March
    case(contract("2026-03-31", **common))  # open, not yet due
    case(contract("2026-02-28", aftercare_contacted_on="2026-03-01"))  # ended before the period
    case(contract("2026-04-01", aftercare_contacted_on="2026-04-02"))  # ended on the period's end: out
    case(tasks=[], values={"service_ended_on": "2026-03-05"})  # no aftercare started: not a case
    case(values={"aftercare_started_at": "soon"})  # started, but no day it ended: not counted
    case({"export_ended_on": "2026-02-27", "aftercare_started_at": T0.isoformat()})  # an older case: its line's end
    case({"growth_ended_on": "2026-03-30", "aftercare_started_at": T0.isoformat(), "aftercare_target_days": 14})
    case(parent=on_time)
    case(parent=on_time)
    with sessions.begin() as s:
        audit.append(s, audit.EventKind.TASK_COMPLETED, actor="anna", instance_id=on_time,
                     element_id="hold_follow_up_day", at=NOW)
        audit.append(s, audit.EventKind.TASK_COMPLETED, actor="anna", instance_id=on_time,
                     element_id="aftercare_contact", at=NOW)
        s.add_all([Customer(business_id="0101010-1", name="A", responsible_expert="anna"),
                   Customer(business_id="0202020-2", name="B"), Customer(business_id="0303030-3", name="C")])
    with sessions.begin() as s:
        report = kpi.aftercare_report(s, march, now=NOW)
    assert (report.finished, report.done, report.not_reached, report.overdue) == (7, 3, 1, 1)
    assert (report.within_target, report.late, report.with_days) == (1, 2, 3)
    assert (report.days_median, report.days_p90) == (17.0, 29.0)
    assert (report.rating_mean, report.rated) == (3.5, 2)
    assert (report.positive, report.answered, report.new_needs, report.new_processes) == (1, 2, 1, 2)
    assert (report.follow_up_due, report.follow_up_done, report.without_expert) == (1, 1, 2)
    assert report.done_share == 3 / 7 and report.within_share == 1 / 3 and report.positive_share == 0.5
    assert report.charts == {
        "done": [("done", 3), ("not_reached", 1), ("not_done", 3)],
        "days": [("0-7", 1), ("8-14", 0), ("15-21", 1), ("22-30", 1), ("31+", 0)],
        "channels": [("phone", 2), ("visit", 1)],
        "ratings": [("1", 0), ("2", 1), ("3", 0), ("4", 0), ("5", 1)],
        "needs": [("new_needs", 1), ("new_processes", 2)],
        "follow_up": [("due", 1), ("done", 1)],
    }


def test_the_dashboard_filters_by_expert_segment_and_service_line(sessions, case):
    case(contract("2026-03-01", responsible_expert="anna", segment="growth", service_line="export"))
    case(contract("2026-03-01", responsible_expert="bob", segment="growth", service_line=["export", "finance"]))
    case(contract("2026-03-01", responsible_expert="bob", segment="start", service_line="finance"))
    with sessions.begin() as s:
        def finished(**f):
            return kpi.aftercare_report(s, kpi.AftercareFilter(**f), now=NOW).finished

        assert finished() == 3
        assert (finished(expert="anna"), finished(expert="bob"), finished(expert="carl")) == (1, 2, 0)
        assert (finished(segment="growth"), finished(segment="start")) == (2, 1)
        assert (finished(service_line="export"), finished(service_line="finance")) == (2, 2)
        assert finished(service_line="port") == 0  # a line's name, not a part of it
        assert finished(expert="bob", segment="growth", service_line="finance") == 1
        start = datetime(2026, 3, 1, tzinfo=kpi.ZoneInfo(kpi.ZONE))
        assert finished(start=start) == 3 and finished(start=start + timedelta(microseconds=1)) == 3
        assert finished(start=start + DAY) == 0 and finished(end=start + DAY) == 3 and finished(end=start) == 0


def test_an_empty_dashboard_has_no_shares(sessions):
    with sessions.begin() as s:
        report = kpi.aftercare_report(s, kpi.AftercareFilter(), now=NOW)
    assert (report.finished, report.done_share, report.within_share, report.positive_share) == (0, None, None, None)
    assert (report.days_median, report.days_p90, report.rating_mean) == (None, None, None)


@pytest.mark.parametrize("days, p90", [([5], 5.0), (list(range(1, 11)), 9.0), (list(range(1, 12)), 10.0),
                                       ([30, 1, 2], 30.0)])
def test_the_90th_percentile_is_the_nearest_rank(days, p90):
    report = kpi.AftercareReport()
    rows = [{"service_ended_on": "2026-03-01", "aftercare_contacted_on": (datetime(2026, 3, 1) + d * DAY).date().isoformat()}
            for d in days]
    kpi._contact_figures(report, [(kpi.AftercareCase.from_values(0, v, kpi.ZONE), v) for v in rows])
    assert report.days_p90 == p90


def test_equal_ratings_add_up_and_contact_days_are_counted_in_the_given_zone():
    report = kpi.AftercareReport()
    rows = [{"service_ended_on": "2026-03-01T22:30:00+00:00", "aftercare_contacted_on": "2026-03-03T21:30:00+00:00",
             "service_rating": 4}, {"service_ended_on": "2026-03-01", "aftercare_contacted_on": "2026-03-03",
                                    "service_rating": 4}]
    kpi._contact_figures(report, [(kpi.AftercareCase.from_values(0, v, "UTC"), v) for v in rows])
    assert dict(report.charts["ratings"])["4"] == 2 and (report.rated, report.rating_mean) == (2, 4.0)
    assert (report.days_median, report.with_days) == (2.0, 2)  # in Helsinki the first would be 1 day


def test_a_period_without_new_processes_or_unowned_customers_counts_none(sessions, case):
    case(contract("2026-03-01"))
    with sessions.begin() as s:
        s.add(Customer(business_id="0101010-1", name="A", responsible_expert="anna"))
    with sessions.begin() as s:
        report = kpi.aftercare_report(s, kpi.AftercareFilter(), now=NOW)
    assert (report.finished, report.new_processes, report.without_expert) == (1, 0, 0)


def test_follow_up_days_done_are_the_periods_cases_with_a_completed_follow_up_day(sessions, case):
    first, second, other = case(contract("2026-03-01")), case(contract("2026-03-02")), case(contract("2026-03-03"))
    outside = case(contract("2026-01-01"))
    with sessions.begin() as s:
        for iid in (first, second, outside):
            audit.append(s, audit.EventKind.TASK_COMPLETED, actor="anna", instance_id=iid,
                         element_id="hold_follow_up_day", at=NOW)
        audit.append(s, audit.EventKind.TASK_COMPLETED, actor="anna", instance_id=other,
                     element_id="aftercare_contact", at=NOW)
        audit.append(s, audit.EventKind.TASK_CLAIMED, actor="anna", instance_id=other,
                     element_id="hold_follow_up_day", at=NOW)
    march = kpi.AftercareFilter(start=datetime(2026, 3, 1, tzinfo=kpi.ZoneInfo(kpi.ZONE)))
    with sessions.begin() as s:
        assert kpi.aftercare_report(s, march, now=NOW).follow_up_done == 2


MARCH_1 = datetime(2026, 3, 1, tzinfo=kpi.ZoneInfo(kpi.ZONE))  # Helsinki midnight


@pytest.mark.parametrize("ended, read", [(MARCH_1 - timedelta(microseconds=1), False), (MARCH_1, True), (None, True)])
def test_the_dashboard_of_a_period_reads_only_the_cases_running_from_its_first_day(sessions, case, monkeypatch,
                                                                                     ended, read):
    """A line that ended in the period was recorded while its case ran (its end day is not_future): the
    dashboard reads the cases running at the period's first local midnight or later, not the office's
    whole history, even when the period starts in the middle of that day."""
    iid = case(contract("2026-03-01", aftercare_outcome="reached", aftercare_contacted_on="2026-03-05"))
    if ended is not None:
        with sessions.begin() as s:
            s.get(Instance, iid).status, s.get(Instance, iid).ended_at = "completed", ended
    seen: list[int] = []
    real = kpi._kpi_variables
    monkeypatch.setattr(kpi, "_kpi_variables", lambda s, ids: seen.extend(ids) or real(s, ids))
    march = kpi.AftercareFilter(start=MARCH_1 + timedelta(hours=12), end=MARCH_1 + 31 * DAY)
    with sessions.begin() as s:
        report = kpi.aftercare_report(s, march, now=NOW)
    assert (report.finished, report.done) == (int(read), int(read))
    assert seen == ([iid] if read else [])


def test_a_contact_recorded_before_the_line_ended_is_in_the_first_bar():
    # every contact with days is in exactly one bar, also one made a day or five days before the recorded end
    report = kpi.AftercareReport()
    rows = [{"service_ended_on": "2026-03-10", "aftercare_target_days": 14, "aftercare_contacted_on": day}
            for day in ("2026-03-09", "2026-03-05", "2026-03-10")]
    kpi._contact_figures(report, [(kpi.AftercareCase.from_values(0, v, kpi.ZONE), v) for v in rows])
    assert report.charts["days"] == [("0-7", 3), ("8-14", 0), ("15-21", 0), ("22-30", 0), ("31+", 0)]
    assert (report.with_days, report.days_median, report.within_target, report.late) == (3, -1.0, 3, 0)


def test_figures_given_the_open_aftercare_rows_use_them_instead_of_reading_again(sessions, case):
    case(contract("2026-03-10"), tasks=[("aftercare_contact", "anna", NOW + DAY)])  # last day 24 March
    with sessions.begin() as s:
        later = kpi.open_aftercare(s, NOW + 10 * DAY)  # read on 30 March: overdue
        assert [late for _t, _i, late in later] == [True]
        [load] = kpi.summary(s, NOW, open_rows=later)["loads"]
        assert (load.aftercare_due, load.aftercare_overdue) == (0, 1)
        assert [t.element_id for t, _i in kpi.overdue_aftercare(s, NOW, open_rows=later)] == ["aftercare_contact"]
        [own] = kpi.summary(s, NOW)["loads"]  # read at its own now: due, not overdue
        assert (own.aftercare_due, own.aftercare_overdue) == (1, 0)
        assert kpi.overdue_aftercare(s, NOW) == []


def test_the_overdue_list_reads_today_in_its_time_zone(sessions, case):
    now = datetime(2026, 3, 19, 22, 30, tzinfo=UTC)  # 19 March in UTC, 20 March in Helsinki
    late = case(contract("2026-03-05"), tasks=[("aftercare_contact", "anna", now + 100 * DAY)])  # last day 19 March
    with sessions.begin() as s:
        assert kpi.overdue_aftercare(s, now, "UTC") == []
        assert [i.id for _t, i in kpi.overdue_aftercare(s, now)] == [late]


def test_the_dashboard_reads_the_case_days_and_today_in_its_time_zone(sessions, case):
    now = datetime(2026, 3, 19, 22, 30, tzinfo=UTC)  # 19 March in UTC, 20 March in Helsinki
    case(contract("2026-03-05"))  # open, last day 19 March: overdue in Helsinki only
    # contacted 12 March in UTC (13 March in Helsinki), its last day 12 March: on time in UTC only
    case(contract("2026-03-02", target=10, aftercare_contacted_on="2026-03-12T23:30:00+00:00"))
    case(contract("2026-03-31T22:30:00+00:00"))  # ended 31 March in UTC, 1 April in Helsinki
    march = kpi.AftercareFilter(start=datetime(2026, 3, 1, tzinfo=UTC), end=datetime(2026, 4, 1, tzinfo=UTC))
    with sessions.begin() as s:
        utc = kpi.aftercare_report(s, march, "UTC", now=now)
        helsinki = kpi.aftercare_report(s, march, now=now)
    assert (utc.finished, utc.done, utc.overdue, utc.within_target, utc.late) == (3, 1, 0, 1, 0)
    assert (helsinki.finished, helsinki.done, helsinki.overdue, helsinki.within_target, helsinki.late) == (2, 1, 1, 0, 1)


def test_the_dashboard_counts_past_the_first_500_cases(sessions, case):
    """The dashboard reads its cases 500 at a time: the first and the last of 501 each count."""
    first = case(contract("2026-03-01"))
    with sessions.begin() as s:
        template = s.get(Instance, first)
        more = [Instance(version_id=template.version_id, process_id=template.process_id, state="", started_by="t")
                for _ in range(500)]
        s.add_all(more)
        s.flush()
        s.add_all(Variable(instance_id=i.id, name=k, value=v) for i in more for k, v in contract("2026-03-01").items())
        last = max(i.id for i in more)
        for iid in (first, last):
            s.add(Instance(version_id=template.version_id, process_id=template.process_id, state="", started_by="t",
                           parent_instance_id=iid))
            audit.append(s, audit.EventKind.TASK_COMPLETED, actor="anna", instance_id=iid,
                         element_id="hold_follow_up_day", at=NOW)
    with sessions.begin() as s:
        report = kpi.aftercare_report(s, kpi.AftercareFilter(), now=NOW)
    assert (report.finished, report.new_processes, report.follow_up_done) == (501, 2, 2)
