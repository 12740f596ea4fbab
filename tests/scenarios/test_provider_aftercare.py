"""Scenario: a line's provider, picked from the registry at the line's close, reaches the line's own
aftercare instance (`service_provider_id`, `service_provider_name`), and the provider's report counts
the service, the customer's rating, feedback and new needs from that aftercare (R7)."""

from __future__ import annotations

from sqlalchemy import select

from engine import providers, runtime
from engine.models import Instance

from .test_service_process import BUSINESS_ID, EXPERT, Case, aftercare_contact, assessment, day, iso


def _aftercare_of(sessions, parent: int) -> Case:
    with sessions.begin() as s:
        [iid] = s.scalars(select(Instance.id).where(Instance.parent_instance_id == parent,
                                                   Instance.process_id == "aftercare")).all()
    child = Case(sessions, lambda: None)
    child.iid = iid
    return child


def _recruitment(case: Case, provider: str) -> None:
    case.do("assess_service_needs", assessment(["recruitment"]), now=day(1))
    case.do("plan_recruitment", {"recruitment_positions": 1, "recruitment_channels": ["job_posting"],
                                 "recruitment_planned_end": iso(day(30))}, now=day(2))
    case.do("deliver_recruitment", {"recruitment_applicants": 9}, now=day(28))
    case.do("close_recruitment", {"recruitment_positions_filled": 1, "recruitment_ended_on": iso(day(30)),
                                  "recruitment_outcome": "completed", "recruitment_provider_delivered": bool(provider),
                                  "recruitment_provider": provider}, now=day(31))


def test_the_lines_provider_reaches_its_aftercare_and_the_providers_report(deployed, step):
    with deployed.begin() as s:
        pid = providers.create_provider(s, {"name": "Rekrykonsultit Oy", "business_id": "2345678-0",
                                            "kind": "consultant"}, by=EXPERT).id
    bought = Case(deployed, step)
    bought.start()
    _recruitment(bought, str(pid))
    own = Case(deployed, step)
    own.start()
    _recruitment(own, "")
    step()
    after, own_iid = _aftercare_of(deployed, bought.iid), _aftercare_of(deployed, own.iid).iid
    with deployed.begin() as s:
        variables = runtime.instance_variables(s, after.iid)
        assert (variables["service_provider_id"], variables["service_provider_name"]) == (pid, "Rekrykonsultit Oy")
        own_after = runtime.instance_variables(s, own_iid)
        assert own_after["service_provider_id"] is None and own_after["service_provider_name"] is None
    after.do("aftercare_contact", aftercare_contact(day(35), service_rating=4, feedback_from_customer="Nopea haku",
                                                    new_service_needs=["staff_training"]), now=day(35))
    step()
    with deployed.begin() as s:
        report = providers.provider_report(s, pid)
        assert [(d.business_key, d.process_id, d.ended_on) for d in report.deliveries] == [
            (BUSINESS_ID, "recruitment", iso(day(30)))]
        assert [a.instance_id for a in report.aftercare] == [after.iid]
        assert report.ratings == [4] and report.aftercare_reached == 1
        assert ("feedback_from_customer", "Nopea haku") in report.aftercare[0].texts
        assert report.new_needs == {"staff_training": 1}
