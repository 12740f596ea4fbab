"""What the bench scripts share: loading a sibling script (`bench/<name>.py`) as a module, by its path,
and the checks of their common options.

bench/ is not a package, and the scripts take their own folder off `sys.path` (its `http.py` would
shadow the standard library's `http`): import this module before doing so, then load the others here.
It imports nothing of Polku's, so a script that must import the engine of another checkout
(`bench/instructions.py --code`) can use it before choosing.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def bench_module(name: str) -> Any:
    """Return `bench/<name>.py` run as a module named `bench_<name>` (each call loads it anew)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DATABASES = ("sqlite", "postgresql")
DBS_HELP = "databases, in order: sqlite, postgresql or both, separated by a comma (default sqlite,postgresql)"


def database_kinds(parser: argparse.ArgumentParser, names: str) -> list[str]:
    """Return the databases `--dbs` names, in order; stop with a message at any other name."""
    kinds = names.split(",")
    if any(kind not in DATABASES for kind in kinds):
        parser.error(f"--dbs {names}: sqlite, postgresql or both, separated by a comma")
    return kinds


def at_least_one(parser: argparse.ArgumentParser, args: argparse.Namespace, *names: str) -> None:
    """Stop with a message if any of these whole-number options is below 1."""
    for name in names:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be 1 or more")
