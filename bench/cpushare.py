"""Where a bench's CPU goes: the CPU seconds of named groups of processes, sampled from /proc (Linux).

`bench/http.py` runs the server, the load tool and the database as separate processes on one
machine; its rates alone do not say which of them the two cores were busy with. A `CpuShare`
samples, once a second in a thread, every process's user and system time and the machine's busy
time (`/proc/stat`), and adds each process's growth to its group: a process tree (a root pid and
every process below it, e.g. `polku serve`'s master and its web processes) or a command name
(`postgres`: the server's backends and helpers). A process is told apart from a later one with the
same pid by its start time; one that appeared between two samples counts from its start, so a
database connection opened mid-run is counted whole; what a process used in its last second before
it ended is lost (not a bench's steady state). `between(start, end)` gives the growth between the
first sample at or after `start` and the last at or before `end`.

This module imports nothing of Polku's (bench/http.py imports it before it puts the project first).
Elsewhere than Linux `available()` is False and a bench leaves the figures out.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


def available() -> bool:
    """Return whether this system has the /proc files the sampler reads."""
    return (PROC / "stat").is_file() and (PROC / "self" / "stat").is_file()


def _machine() -> tuple[int, int]:
    """Return the machine's busy and total clock ticks since boot (all cores; idle and iowait are not busy)."""
    ticks = [int(v) for v in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(ticks[:8])  # user nice system idle iowait irq softirq steal (guest time is inside user)
    return total - ticks[3] - ticks[4], total


def _processes() -> dict[int, tuple[int, str, int, int]]:
    """Return pid -> (parent pid, command name, start time, user + system ticks) for every process."""
    found = {}
    for entry in os.scandir(PROC):
        if not entry.name.isdigit():
            continue
        try:
            text = (PROC / entry.name / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        name_end = text.rindex(")")  # the command name may hold spaces and parentheses
        fields = text[name_end + 2:].split()
        # after the name: state ppid ... utime(12) stime(13) ... starttime(20), counted from the state's 0
        found[int(entry.name)] = (int(fields[1]), text[text.index("(") + 1:name_end], int(fields[19]),
                                  int(fields[11]) + int(fields[12]))
    return found


@dataclass(frozen=True)
class Share:
    """CPU seconds per group between two samples, with the machine's busy and total seconds (all cores)."""

    start: float  # wall clock (time.time) of the first sample
    end: float
    seconds: dict[str, float]
    busy: float
    total: float

    @property
    def rest(self) -> float:
        """Busy seconds of processes in no group (and the kernel's own work)."""
        return max(0.0, self.busy - sum(self.seconds.values()))


class CpuShare:
    """Samples groups of processes' CPU once a second (see the module)."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.tick = os.sysconf("SC_CLK_TCK")
        self._trees: dict[str, int] = {}
        self._names: dict[str, str] = {}
        self._seen: dict[tuple[int, int], int] = {}  # (pid, start time) -> ticks at its last sample
        self._sums: dict[str, int] = {}
        self._samples: list[tuple[float, dict[str, int], int, int]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tree(self, group: str, root: int) -> None:
        """Count the process `root` and every process below it as `group` from the next sample on."""
        with self._lock:
            self._trees[group] = root
            self._sums.setdefault(group, 0)

    def command(self, group: str, name: str) -> None:
        """Count every process whose command name is `name` as `group` from the next sample on."""
        with self._lock:
            self._names[group] = name
            self._sums.setdefault(group, 0)

    def sample(self) -> float:
        """Take one sample now; return its time (time.time)."""
        with self._lock:  # one sample at a time: the thread's and a caller's
            processes = _processes()
            busy, total = _machine()
            when = time.time()
            groups = self._groups(processes)
            if not self._samples:  # the first sample: every process's time so far is its baseline
                self._seen = {(pid, p[2]): p[3] for pid, p in processes.items()}
            else:
                seen = {}
                for pid, (_parent, _name, started, ticks) in processes.items():
                    before = self._seen.get((pid, started), 0)  # new since the last sample: counted whole
                    seen[(pid, started)] = ticks
                    group = groups.get(pid)
                    if group is not None:
                        self._sums[group] += ticks - before
                self._seen = seen
            self._samples.append((when, dict(self._sums), busy, total))
        return when

    def _groups(self, processes: dict[int, tuple[int, str, int, int]]) -> dict[int, str]:
        by_name = {name: group for group, name in self._names.items()}
        roots = {root: group for group, root in self._trees.items()}
        found: dict[int, str] = {}
        for pid, (parent, name, _started, _ticks) in processes.items():
            if name in by_name:
                found[pid] = by_name[name]
                continue
            walked, at = 0, pid
            while at > 1 and walked < 64:  # up the parents to a root, if any
                if at in roots:
                    found[pid] = roots[at]
                    break
                at, walked = processes.get(at, (0,))[0], walked + 1
        return found

    def start(self) -> None:
        """Sample now and then every `interval` seconds in a thread, until `stop`."""
        self.sample()
        self._thread = threading.Thread(target=self._run, name="cpu-share", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        """Take a last sample and end the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def between(self, start: float, end: float) -> Share | None:
        """Return the growth from the first sample at or after `start` to the last at or before `end`.

        None when fewer than two samples fall in the span.
        """
        with self._lock:
            inside = sorted((s for s in self._samples if start <= s[0] <= end), key=lambda s: s[0])
        if len(inside) < 2:
            return None
        (t0, sums0, busy0, total0), (t1, sums1, busy1, total1) = inside[0], inside[-1]
        return Share(t0, t1, {g: (sums1[g] - sums0.get(g, 0)) / self.tick for g in sums1},
                     (busy1 - busy0) / self.tick, (total1 - total0) / self.tick)
