"""bench/cpushare.py: the CPU seconds of a process tree and of a command name, read from /proc."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location("cpushare", Path(__file__).parents[2] / "bench" / "cpushare.py")
assert _SPEC is not None and _SPEC.loader is not None
cpushare = importlib.util.module_from_spec(_SPEC)
sys.modules["cpushare"] = cpushare  # its dataclass looks its module up there
_SPEC.loader.exec_module(cpushare)

pytestmark = pytest.mark.skipif(not cpushare.available(), reason="needs Linux's /proc")

# a parent that waits for a line on its input, then starts a child; each burns CPU for the given seconds,
# says so, then sleeps until killed (what a process uses in its last second before it ends is not
# counted: they must outlive a sample)
BURN = """
import subprocess, sys, time
def burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
if sys.argv[1] == "parent":
    print("ready", flush=True)
    sys.stdin.readline()
    child = subprocess.Popen([sys.executable, "-c", sys.argv[2], "child", sys.argv[2], sys.argv[3]])
    print(child.pid, flush=True)
    burn(float(sys.argv[3]))
    print("burnt", flush=True)
    child.wait()
else:
    burn(float(sys.argv[3]))
    print("burnt", flush=True)
    time.sleep(60)
"""


def test_a_tree_counts_its_root_and_every_process_below_it_and_nothing_else():
    share = cpushare.CpuShare(interval=0.2)
    share.start()
    tree = subprocess.Popen([sys.executable, "-c", BURN, "parent", BURN, "0.6"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert tree.stdin is not None and tree.stdout is not None
    child = None
    try:
        assert tree.stdout.readline() == "ready\n"
        share.tree("burners", tree.pid)
        share.command("nobody", "no-such-command-here")
        began = share.sample()
        tree.stdin.write("go\n")
        tree.stdin.flush()
        child = int(tree.stdout.readline())
        assert tree.stdout.readline() == tree.stdout.readline() == "burnt\n"  # both
        time.sleep(0.3)  # the thread samples once more after both are done
        ended = share.sample()
    finally:
        for pid in (child, tree.pid):
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        tree.wait()
        tree.stdin.close()
        tree.stdout.close()
    share.stop()
    measured = share.between(began, ended)
    assert measured is not None and (measured.start, measured.end) == (began, ended)
    # the parent's 0.6 s and the child's, though the child started after a sample (counted from its start,
    # with its interpreter's start-up)
    assert 1.15 <= measured.seconds["burners"] <= 1.5, measured
    assert measured.seconds["nobody"] == 0
    assert measured.busy >= measured.seconds["burners"] - 0.05  # the machine was at least this busy
    assert measured.total >= measured.end - measured.start  # at least one core's worth of ticks
    assert measured.rest == pytest.approx(max(0.0, measured.busy - measured.seconds["burners"]))


def test_a_span_needs_two_samples_and_takes_the_first_and_last_inside_it():
    share = cpushare.CpuShare(interval=60)  # the thread samples once a minute: the test samples by hand
    first = share.sample()
    assert share.between(first, first) is None  # one sample: no span
    second = share.sample()
    measured = share.between(first - 1, second + 1)
    assert measured is not None and (measured.start, measured.end) == (first, second)
    assert share.between(second + 1, second + 2) is None
