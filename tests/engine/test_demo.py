"""The demo office (`polku seed-demo`): a year of realistic cases, so every page shows real numbers."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine import actions, customers, demo, history, kpi, runtime, survey, users
from engine import deploy as deploy_mod
from engine.cli import main
from engine.config import Settings
from engine.db import make_engine, make_sessions, upgrade
from engine.models import Customer, Instance, InstanceStatus, ProcessVersion, Task, TaskStatus
from engine.outreach_models import Contact

MODEL_DIR = Path(__file__).resolve().parents[2] / "bpmn"
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def office(tmp_path_factory):
    """Seed the demo office once on the shipped models; return (session factory, first run's result)."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    runtime.forget_cache()
    sessions = make_sessions(engine)
    files = {p.name: p.read_bytes() for p in sorted(MODEL_DIR.iterdir()) if p.suffix in {".bpmn", ".dmn"}}
    with sessions.begin() as session:
        deploy_mod.deploy_files(session, files, by="designer")
        users.seed_demo_users(session)
    with sessions.begin() as session:
        made = demo.seed_office(session, now=NOW)
    runtime.forget_cache()
    yield sessions, made
    runtime.forget_cache()
    engine.dispose()


def test_forty_customers_with_valid_business_ids_and_their_experts(office):
    sessions, made = office
    assert made["customers_created"] == demo.CUSTOMER_COUNT == 40
    with sessions.begin() as s:
        rows = list(s.scalars(select(Customer)))
        experts = {u.username for u in users.experts(s)}
    assert len(rows) == 40 and len({c.name for c in rows}) == 40
    assert all(customers.validate_business_id(c.business_id) == c.business_id for c in rows)
    assert {c.responsible_expert for c in rows} <= experts and len({c.responsible_expert for c in rows}) >= 3


def test_a_year_of_cases_in_every_stage(office):
    sessions, made = office
    with sessions.begin() as s:
        starts = [i.started_at.replace(tzinfo=UTC) for i in s.scalars(select(Instance))]
        status = Counter(str(i.status) for i in s.scalars(select(Instance)))
        open_elements = Counter(t.element_id for t in s.scalars(select(Task).where(Task.state == TaskStatus.READY)))
        done_elements = Counter(t.element_id for t in s.scalars(select(Task).where(
            Task.state == TaskStatus.COMPLETED)))
        contacts = s.scalar(select(func.count()).select_from(Contact))
    assert made["cases_started"] + made["aftercare_started"] == len(starts)
    assert made["cases_started"] >= 45
    assert min(starts) < NOW - timedelta(days=300) and max(starts) <= NOW
    assert max(starts) > NOW - timedelta(days=3), "a new customer waits in the intake queue"
    assert status["completed"] >= 10 and status["running"] >= 20
    assert {"assess_service_needs", "aftercare_contact", "handle_overdue_aftercare"} <= set(open_elements)
    assert any(e.startswith("plan_") for e in open_elements) and any(e.startswith("deliver_") for e in open_elements)
    assert {"assess_service_needs", "aftercare_contact", "handle_overdue_aftercare"} <= set(done_elements)
    assert any(e.startswith("close_") for e in done_elements), "services delivered and closed"
    assert contacts >= made["contacts_logged"] >= 40  # and one logged by each case ended "no service need now"


def test_kpis_supervisor_view_and_heatmap_show_real_numbers(office):
    sessions, _made = office
    with sessions.begin() as s:
        year = kpi.aftercare_on_time(s, NOW - timedelta(days=365), NOW)
        month = kpi.aftercare_on_time(s, kpi.month_start(NOW), NOW)
        loads = kpi.expert_loads(s, NOW)
        overdue = kpi.overdue_aftercare(s, NOW)
        unassigned, _unassigned_overdue = kpi.unassigned_open(s, NOW)
        version_id = s.scalar(select(Instance.version_id).where(Instance.process_id == demo.PROCESS).limit(1))
        heat = history.heatmap(s, version_id)
        aftercare_version = s.scalar(select(Instance.version_id).where(Instance.process_id == "aftercare").limit(1))
        aftercare_heat = history.heatmap(s, aftercare_version) if aftercare_version else heat  # one per ended line
        positive = [runtime.instance_variables(s, i.id).get("experience_positive")  # the contacts made
                    for i in s.scalars(select(Instance).where(Instance.process_id == "aftercare"))]
        by_channel = Counter(runtime.instance_variables(s, i.id).get("contact_channel")
                             for i in s.scalars(select(Instance)))
    assert year.done >= 10 and 0 < year.on_time < year.done, "aftercare both on time and late"
    assert sum(x.open_tasks for x in loads) > 0 and sum(x.overdue_tasks for x in loads) > 0
    assert overdue, "overdue aftercare for the supervisor"
    assert unassigned > 0
    assert aftercare_heat["aftercare_contact"]["count"] > 0 and heat["assess_service_needs"]["count"] > 0
    assert True in positive and False in positive, "feedback given, good and bad"
    assert year.not_reached >= 1, "customers not reached, counted apart"
    assert month.done >= 1, "contacts made this month: the supervisor's figure"
    assert by_channel["aftercare"] >= 1, "a new need found in aftercare started a new case"


def test_each_ended_line_has_its_aftercare_some_reached_only_after_attempts(office):
    sessions, made = office
    with sessions.begin() as s:
        rows = list(s.scalars(select(Instance).where(Instance.process_id == "aftercare")))
        parents = {i.id: i for i in s.scalars(select(Instance).where(Instance.process_id == demo.PROCESS))}
        cases = [(i, runtime.instance_variables(s, i.id)) for i in rows]
        runs = sum(len(actions.action_runs(s, i.id, "customer_not_reached")) for i in rows)
    assert made["aftercare_started"] == len(rows) >= 20
    assert all(i.parent_instance_id in parents and i.business_key == parents[i.parent_instance_id].business_key
               for i, _v in cases), "started by the customer's service process"
    assert len({v["service_line"] for _i, v in cases}) >= 4
    outcomes = Counter(v.get("aftercare_outcome") for i, v in cases if i.status == InstanceStatus.COMPLETED)
    assert outcomes["reached"] >= 10 and outcomes["not_reached"] >= 1
    not_reached = [v for i, v in cases if v.get("aftercare_outcome") == "not_reached"
                   and i.status == InstanceStatus.COMPLETED]  # (an open overdue handling holds older data)
    assert all(len(v["aftercare_attempts"]) == v["office"]["aftercare_attempts"] for v in not_reached)
    assert any(v.get("aftercare_outcome") == "reached" and v["aftercare_attempts"] for _i, v in cases), \
        "reached on a later try, the failed attempts kept"
    assert made["not_reached_recorded"] == runs  # every attempt is a task action in its case's history
    assert {v.get("service_met_need") for _i, v in cases} >= {"yes", "partly"}, "the feedback conversation"
    assert any(v.get("service_provider_name") for _i, v in cases), "a registry provider delivered a line"
    covered = [v for _i, v in cases if v.get("aftercare_covered_by")]
    assert len(covered) == made["aftercare_covered"] >= 1, "one talk covered two lines of a case"
    assert made["providers_created"] == len(demo.PROVIDERS)


def test_cases_that_end_early_no_service_need_now_and_a_declined_promise(office):
    sessions, made = office
    with sessions.begin() as s:
        ended = [(i, runtime.instance_variables(s, i.id)) for i in s.scalars(select(Instance).where(
            Instance.process_id == demo.PROCESS, Instance.status == InstanceStatus.COMPLETED))]
        children = {i.parent_instance_id for i in s.scalars(select(Instance).where(Instance.process_id == "aftercare"))}
        contacts = s.scalar(select(func.count()).select_from(Contact))
    no_need = [(i, v) for i, v in ended if v.get("assessment_outcome") == "no_service_need_now"]
    declined = [(i, v) for i, v in ended if v.get("service_promise_outcome") == "declined"]
    agreed_later = [(i, v) for i, v in ended if v.get("service_promise_outcome") == "agreed"]
    assert len(no_need) >= 2 and len(declined) >= 2 and agreed_later
    assert all(i.id not in children for i, _v in no_need + declined), "no service line, no aftercare"
    assert all(v["service_promise_declined_reason"] for _i, v in declined)
    assert all(i.id in children for i, _v in agreed_later), "agreed on a later call: services and aftercare"
    assert contacts == made["contacts_logged"] + len(no_need), "each no-need case logs its contact"


def test_the_national_survey_of_the_last_four_quarters(office):
    sessions, made = office
    with sessions.begin() as s:
        rows = [(r.period, r.positive_percent) for r in survey.series(s)]
    assert made["survey_periods_recorded"] == 4
    assert rows == [("2025-Q4", 64.5), ("2026-Q1", 67.8), ("2026-Q2", 71.2), ("2026-Q3", 68.9)]  # NOW: 2026-11-20


def test_follow_up_days_a_year_after_the_consulting_ended(office):
    sessions, _made = office
    with sessions.begin() as s:
        held = [runtime.instance_variables(s, t.instance_id) for t in s.scalars(select(Task).where(
            Task.element_id == "hold_follow_up_day", Task.state == TaskStatus.COMPLETED))]
    assert any(v["service_line"] == "business_development" for v in held), "consulting followed up"
    for v in held:
        ended = date.fromisoformat(v["service_ended_on"])
        assert date.fromisoformat(v["follow_up_due"][:10]) == ended + timedelta(days=v["office"]["follow_up_offset_days"])


def test_a_second_run_adds_nothing_and_the_data_is_deterministic(office):
    sessions, _made = office
    with sessions.begin() as s:
        before = (s.scalar(select(func.count()).select_from(Customer)),
                  s.scalar(select(func.count()).select_from(Instance)))
        again = demo.seed_office(s, now=NOW + timedelta(days=1))
        after = (s.scalar(select(func.count()).select_from(Customer)),
                 s.scalar(select(func.count()).select_from(Instance)))
    assert again["customers_created"] == again["cases_started"] == again["providers_created"] == 0
    assert again["survey_periods_recorded"] == 0
    assert again["customers_existing"] == 40
    assert before == after
    experts = ["a", "b"]
    assert demo.demo_customers(random.Random(demo.SEED), experts) == demo.demo_customers(
        random.Random(demo.SEED), experts)


def test_a_seeded_case_goes_on_after_a_reload(office):
    sessions, _made = office
    runtime.forget_cache()
    with sessions.begin() as s:
        task = s.scalars(select(Task).where(Task.state == TaskStatus.READY,
                                            Task.element_id == "assess_service_needs")).first()
        assert task is not None
        iid = task.instance_id
        runtime.complete_task(s, task.id, {
            "assessment_date": NOW.date().isoformat(), "assessment_method": "phone", "company_situation": "growth",
            "segment": "local", "identified_needs": ["recruitment"], "process_agreed_with_customer": True,
            "responsible_expert": "expert2"}, by="expert2", now=NOW)
    with sessions.begin() as s:
        assert [t.element_id for t in s.scalars(select(Task).where(
            Task.instance_id == iid, Task.state == TaskStatus.READY))] == ["plan_recruitment"]


def test_cli_seeds_once_and_is_refused_in_production(tmp_path, capsys):
    settings = Settings(database_url=f"sqlite:///{tmp_path}/p.db")
    assert main(["init"], settings=settings) == 0
    assert main(["deploy", str(MODEL_DIR), "--by", "setup"], settings=settings) == 0
    capsys.readouterr()
    assert main(["seed-demo"], settings=settings) == 0
    first = capsys.readouterr()
    assert json.loads(first.out)["office"]["customers_created"] == 40 and "40 customers" in first.err
    assert main(["seed-demo"], settings=settings) == 0
    second = capsys.readouterr()
    assert json.loads(second.out)["office"]["cases_started"] == 0 and "nothing added" in second.err
    production = Settings(database_url=f"sqlite:///{tmp_path}/p.db", env="production", secret_key="s" * 48)
    assert main(["seed-demo"], settings=production) == 1
    assert "refused when POLKU_ENV=production" in capsys.readouterr().err
    with make_sessions(make_engine(f"sqlite:///{tmp_path}/p.db")).begin() as s:
        assert s.scalar(select(func.count()).select_from(ProcessVersion)) > 0
