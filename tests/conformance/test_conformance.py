"""Every construct, three ways: straight in one process, reloaded before every step, and through the CLI.

The cases are in `cases.py`, the three drivers in `driver.py`. The CLI cases are slow (a new OS
process per step), so the first CLI test runs every selected CLI case, two at a time, and each
CLI test then judges its own outcome. `make conformance-doc` writes `docs/conformance.md` from
the same runs.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from .cases import CASES, Case
from .driver import MODES, Outcome, mismatches, run_case


@pytest.fixture(scope="session")
def cli_outcomes(request) -> dict[str, Outcome]:
    """Run the selected CLI cases two at a time; return their outcomes by case name."""
    wanted = [item.callspec.params["case"] for item in request.session.items
              if getattr(item, "callspec", None) is not None and item.callspec.params.get("mode") == "cli"
              and isinstance(item.callspec.params.get("case"), Case)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip([c.name for c in wanted], pool.map(lambda c: run_case(c, "cli"), wanted)))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_construct(case: Case, mode: str, request) -> None:
    """The case's model does what BPMN says, or deploy refuses it with a sentence naming the element."""
    if mode == "cli":
        outcome = request.getfixturevalue("cli_outcomes")[case.name]
    else:
        outcome = run_case(case, mode)
    wrong = mismatches(case, outcome)
    assert not wrong, f"{case.construct} ({mode}):\n  " + "\n  ".join(wrong)
