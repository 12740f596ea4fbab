"""Load a sibling bench script (`bench/<name>.py`) as a module, by its path.

bench/ is not a package, and the scripts take their own folder off `sys.path` (its `http.py` would
shadow the standard library's `http`): import this module before doing so, then load the others here.
"""

from __future__ import annotations

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
