"""The 21 MIWG reference diagrams: each deploys, or is refused for exactly what cannot run, in sentences.

What cannot run: pools marked isExecutable="false" (most A/B/C.2 diagrams only describe work), Java
delegates, data stores, compensation, subprocesses without a start event,
XPath conditions, business rule tasks without a DMN decision, multi-instance over a Zeebe FEEL
collection. The browser half (each opens and renders in the modeler) is tests/browser/test_designer_flow.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import deploy
from engine.errors import InvalidModel

MIWG = Path("/work/shared/samples/miwg")
FILES = sorted(MIWG.glob("*.bpmn"))
NOT_EXECUTABLE = 'is marked isExecutable="false": it describes work but the engine cannot run it'
DATA_STORE = "cannot be run: the engine has no implementation for data stores"
COMPENSATION = "compensation is not supported by the engine"
NO_DECISION = "does not name its DMN decision (camunda:decisionRef is missing)"
XPATH = "other languages such as XPath or FEEL are not run"  # C.1.1 writes conditions in XPath
JAVA = "has no implementation Polku can run"
EXPECTED: dict[str, dict[str, str]] = {  # file -> {element: what the sentence says}; {} = deploys
    "A.1.0.bpmn": {"WFP-6-": NOT_EXECUTABLE},
    "A.2.0.bpmn": {"WFP-6-": NOT_EXECUTABLE},
    "A.2.1.bpmn": {"_To9ZoTOCEeSknpIVFCxNIQ": NOT_EXECUTABLE},
    "A.3.0.bpmn": {"WFP-6-": NOT_EXECUTABLE},
    "A.4.0.bpmn": {"WFP-6-1": NOT_EXECUTABLE, "WFP-6-2": NOT_EXECUTABLE},
    "A.4.1.bpmn": {"sid-34746A54-1D7D-46CA-B219-0C4CEAE51170": NOT_EXECUTABLE,
                   "sid-54D696FD-DEDC-45F3-99DB-1404DA433FC4": NOT_EXECUTABLE},
    "B.1.0.bpmn": {p: NOT_EXECUTABLE for p in ("Process_ba16239e-181e-4b9f-bc5b-0bb2ee973450", "WFP-6-1",
                                               "WFP-6-2", "WFP-0-")},
    "B.2.0.bpmn": {p: NOT_EXECUTABLE for p in ("Process_ba16239e-181e-4b9f-bc5b-0bb2ee973450", "WFP-6-1",
                                               "WFP-6-2", "WFP-0-")},
    "C.1.0.bpmn": {"archiveInvoice": JAVA},
    "C.1.1.bpmn": {"archiveInvoice": JAVA, "invoiceApproved": XPATH, "invoiceNotApproved": XPATH,
                   "reviewSuccessful": XPATH, "reviewNotSuccessful": XPATH},
    "C.2.0.bpmn": {f"WFP-Page_1-{i}": NOT_EXECUTABLE for i in (1, 2, 3, 4)},
    "C.3.0.bpmn": {"_cd6f230f-13c3-4027-aa3e-57de601a1ab2":
                   "'Perform emergency repair' (subProcess) has 0 start events; the engine needs exactly one"},
    "C.4.0.bpmn": {"_d367181e-c25a-407e-a5fb-817a27698a30": DATA_STORE,
                   "_7c793f30-d450-4a8e-becf-f168b14317ea": DATA_STORE,
                   "_2addcc9a-638e-4496-b84f-5b0e28fe6536": DATA_STORE},
    "C.5.0.bpmn": {"_776bd6ca-5f18-432f-a748-f1930bfdf16e": DATA_STORE,
                   "_46aee7ee-fab2-4735-80cc-fa78092ef92e": DATA_STORE},
    "C.6.0.bpmn": {e: COMPENSATION for e in (
        "_6a5cdbbf-2618-496e-b728-955dc215ef9d", "_99bf4db9-3616-4ed1-a0f8-b8175c3fd46f",
        "_e4b9fa74-efd8-409f-a2e4-ad917df767b4", "_8af17ed4-6e13-463b-8333-d397b3002c65",
        "_3a2f133c-3ae1-4e21-94b5-6e8cf51acd74", "_0198160d-b56c-4919-9920-db5f32d16b3f",
        "_b25ecc7c-4eff-4a70-96f2-6b2f94cf19b1", "_fe3f9094-097b-416d-adeb-4b7e7e753f3c")},
    "C.7.0.bpmn": {"_eae674ce-4d6e-48ac-819c-c79e0868e40d": NO_DECISION},
    "C.8.0.bpmn": {"VacationRequestProcess": NOT_EXECUTABLE},
    "C.8.1.bpmn": {"_1a818a94-ba6f-413b-a7e8-6f8fd2a11e32": NO_DECISION},
    "C.9.0.bpmn": {"BusinessRuleTask_CheckApplicationAutomatically": NO_DECISION,
                   "Activity_ManualCheck": "calls process 'ManualCheck', which is neither in these files nor deployed"},
    "C.9.1.bpmn": {},
    "C.9.2.bpmn": {"CallActivity_RequestDocument": "is a multi-instance activity without a loopCardinality or a "
                                                   "camunda:collection"},  # Zeebe's FEEL collection
}
CALLS = {"C.9.2.bpmn": ["C.9.1.bpmn"], "C.9.0.bpmn": ["C.9.1.bpmn"]}  # deployed first


def test_all_21_reference_diagrams_are_here():
    assert len(FILES) == 21 and sorted(EXPECTED) == [p.name for p in FILES]


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_diagram_deploys_or_is_refused_for_what_cannot_run(sessions, path):
    for called in CALLS.get(path.name, []):
        with sessions.begin() as s:
            deploy.deploy_files(s, {called: (MIWG / called).read_bytes()}, by="miwg")
    expected = EXPECTED[path.name]
    try:
        with sessions.begin() as s:
            result = deploy.deploy_files(s, {path.name: path.read_bytes()}, by="miwg")
    except InvalidModel as err:
        found = {p.element: p.message for p in err.problems}
        assert set(found) == set(expected), err.problems
        for problem in err.problems:
            assert problem.file == path.name and problem.line, problem
            assert expected[problem.element] in problem.message, problem
    else:
        assert expected == {} and result.created


def test_designer_shows_the_reasons_for_a_reference_diagram(client, login_as):
    login_as("designer")
    content = (MIWG / "C.7.0.bpmn").read_text()
    response = client.post("/designer/validate", json={"filename": "C.7.0.bpmn", "content": content},
                           headers={"X-CSRFToken": client.csrf_token()}, csrf=False)
    engine = [p for p in response.get_json()["problems"] if p["source"] == "engine"]
    assert {p["element"] for p in engine} == {"_eae674ce-4d6e-48ac-819c-c79e0868e40d"}
