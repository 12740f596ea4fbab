"""The shipped models' contract with the KPI code: what engine/kpi.py reads, the models in bpmn/ write.

The models are deployed as an operator would, and what they write is read back from the deployed
versions: form fields from the catalogue, assignments in scripts and decision outputs from the
stored files. Renaming a variable in bpmn/aftercare.bpmn (or in kpi.py) fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from engine import deploy, kpi
from engine.models import ModelFile, ProcessVersion

BPMN = Path(__file__).resolve().parents[2] / "bpmn"
ASSIGNMENT = re.compile(r"^\s*([A-Za-z_]\w*)\s*=(?!=)", re.MULTILINE)

# written here, not read from kpi.py: the variables the aftercare dashboard and supervisor figures use
# (the aftercare contract: one aftercare instance per ended service line, on time by kpi.AftercareCase)
KPI_READS = {"responsible_expert", "service_line", "segment", "service_ended_on", "aftercare_target_days",
             "aftercare_started_at", "aftercare_outcome", "aftercare_attempts", "aftercare_contacted_on",
             "aftercare_channel", "service_rating", "experience_positive", "new_service_needs",
             "follow_up_new_needs", "follow_up_due"}
CASE_READS = {"service_line", "service_ended_on", "aftercare_target_days", "aftercare_started_at",
              "aftercare_contacted_on", "aftercare_outcome", "aftercare_attempts"}
KPI_USER_TASKS = {"aftercare_contact", "hold_follow_up_day"}  # of the aftercare process


@pytest.fixture
def shipped(sessions):
    """Deploy every shipped model; return ({variable: [where written]}, {process: {element: entry}})."""
    with sessions.begin() as s:
        deploy.deploy_files(s, {p.name: p.read_bytes() for p in BPMN.iterdir() if p.suffix in (".bpmn", ".dmn")},
                            by="test")
        written: dict[str, list[str]] = {}
        elements: dict[str, dict] = {}
        for version in s.scalars(select(ProcessVersion)):
            for process_id, entries in version.catalogue.get("processes", {}).items():
                elements[process_id] = entries
                for element_id, entry in entries.items():
                    for field in entry.get("form") or []:
                        written.setdefault(field["id"], []).append(f"{process_id}:{element_id} form")
        for model in s.scalars(select(ModelFile)):
            for el in etree.fromstring(model.content.encode()).iter():
                if not isinstance(el.tag, str):
                    continue
                tag = etree.QName(el).localname
                if tag == "script" and el.text:
                    for name in ASSIGNMENT.findall(el.text):
                        written.setdefault(name, []).append(f"{model.filename} script")
                elif tag == "output" and el.get("name"):
                    written.setdefault(el.get("name"), []).append(f"{model.filename} decision")
        return written, elements


def test_the_kpi_code_reads_the_variables_this_test_names():
    assert set(kpi._KPI_VARIABLES) == KPI_READS
    assert set(kpi.CASE_VARIABLES) == CASE_READS <= KPI_READS
    assert set(kpi.AFTERCARE_ELEMENTS) == KPI_USER_TASKS


@pytest.mark.parametrize("variable", sorted(KPI_READS))
def test_every_variable_the_kpis_read_is_written_by_a_shipped_model(shipped, variable):
    written, _elements = shipped
    assert written.get(variable), f"no shipped model writes {variable}"


def test_the_aftercare_user_tasks_the_kpis_count_exist(shipped):
    _written, elements = shipped
    for element_id in KPI_USER_TASKS:
        assert elements["aftercare"][element_id]["type"] == "userTask", element_id


def test_the_aftercare_contact_form_writes_what_the_on_time_share_needs(shipped):
    written, _elements = shipped
    for variable in ("aftercare_contacted_on", "aftercare_channel", "service_rating", "experience_positive"):
        assert "aftercare:aftercare_contact form" in written[variable], variable
    assert any(v.endswith("_ended_on") for v in written), "no service writes its end day (*_ended_on)"


def test_a_contact_or_attempt_day_cannot_be_in_the_future():
    """kpi.aftercare_on_time reads only the cases still running in its period: that holds because the day
    of a contact or an attempt is never later than the day it is recorded (while its case runs)."""
    tree = etree.fromstring((BPMN / "aftercare.bpmn").read_bytes())
    for field_id in ("aftercare_contacted_on", "aftercare_attempt_on"):
        [field] = [f for f in tree.iter("{*}formField") if f.get("id") == field_id]
        checks = {c.get("name"): c.get("config") for c in field.iter("{*}constraint")}
        assert checks.get("not_future") == "true", field_id


OUTCOME = re.compile(r"^\s*aftercare_outcome\s*=\s*['\"](\w+)['\"]", re.MULTILINE)


def test_the_outcomes_the_models_write_are_the_ones_the_on_time_definition_reads():
    """kpi.AftercareCase counts "reached" as a contact made and "not_reached" apart: nothing else may be
    written, or a case would count as open for ever."""
    written = set()
    for path in BPMN.glob("*.bpmn"):
        for el in etree.fromstring(path.read_bytes()).iter("{*}script"):
            written |= set(OUTCOME.findall(el.text or ""))
    assert written == {"reached", "not_reached"}
