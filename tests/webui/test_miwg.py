"""The 21 MIWG reference diagrams: each deploys, or the designer gets a clear element-level reason.

The browser half (each opens and renders in the modeler) is tests/browser/test_designer_flow.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import deploy
from engine.errors import InvalidModel

MIWG = Path("/work/shared/samples/miwg")
FILES = sorted(MIWG.glob("*.bpmn"))


def test_all_21_reference_diagrams_are_here():
    assert len(FILES) == 21


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_diagram_deploys_or_each_problem_names_its_element(sessions, path):
    try:
        with sessions.begin() as s:
            result = deploy.deploy_files(s, {path.name: path.read_bytes()}, by="miwg")
    except InvalidModel as err:
        assert err.problems
        for problem in err.problems:
            assert problem.file == path.name and len(problem.message) > 20
            assert problem.element and problem.line, problem
    else:
        assert result.created


def test_designer_shows_the_reasons_for_a_reference_diagram(client, login_as):
    login_as("designer")
    content = (MIWG / "C.9.1.bpmn").read_text()
    response = client.post("/designer/validate", json={"filename": "C.9.1.bpmn", "content": content},
                           headers={"X-CSRFToken": client.csrf_token()}, csrf=False)
    engine = [p for p in response.get_json()["problems"] if p["source"] == "engine"]
    assert {p["element"] for p in engine} == {"BoundaryEvent_1", "BoundaryEvent_2"}
