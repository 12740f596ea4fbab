"""Every construct, three ways: straight in one process, reloaded before every step, and through the CLI.

The cases are in `cases.py`, the three drivers in `driver.py`. The CLI runs are slow (a new OS
process per step), so the first test starts every selected CLI case in the background, two at a
time; the in-process tests run meanwhile, and each CLI test then judges its own outcome.
`make conformance-doc` writes `docs/conformance.md` from the same runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from .cases import CASES, Case
from .driver import Outcome, mismatches, run_case, start_cli_runs

IDS = [c.name for c in CASES]


@pytest.fixture(scope="module", autouse=True)
def cli_runs(request) -> Iterator[dict[str, Future[Outcome]]]:
    """Start the selected CLI cases in the background; yield their futures by case name."""
    wanted = [item.callspec.params["case"] for item in request.session.items
              if item.originalname == "test_cli" and getattr(item, "callspec", None) is not None]
    pool = ThreadPoolExecutor(max_workers=2)
    try:
        yield start_cli_runs(wanted, pool)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _judge(case: Case, outcome: Outcome, mode: str) -> None:
    wrong = mismatches(case, outcome)
    assert not wrong, f"{case.construct} ({mode}):\n  " + "\n  ".join(wrong)


@pytest.mark.parametrize("mode", ["straight", "reload"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_in_process(case: Case, mode: str) -> None:
    """In one process (caches warm, or dropped before every step) the model does what BPMN says."""
    _judge(case, run_case(case, mode), mode)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cli(case: Case, cli_runs: dict[str, Future[Outcome]]) -> None:
    """With every step a new `polku` process the model does what BPMN says."""
    _judge(case, cli_runs[case.name].result(), "cli")
