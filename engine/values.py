"""Process data that cannot break a case: JSON-plain, bounded in size and depth, no reserved keys.

Every value that enters case data from outside the model (task completion variables, external
task variables, incident-retry data, message payloads, API/CLI/form input) or from a script
result passes `check_plain` before it is stored. Plain means what JSON holds and reads back
unchanged: text, whole numbers, finite decimals, true/false, null, lists and objects with text
keys. SpiffWorkflow's serializer turns any object carrying a `typename` key back into a Python
object of that registered type on the next load, so such keys are refused at any depth.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from engine.errors import DataInvalid

__all__ = ["MAX_BYTES", "MAX_DEPTH", "NAME_MAX", "RESERVED_KEYS", "check_plain", "describe_path", "kind_of"]

MAX_BYTES = 1_000_000  # JSON size of all the data in one check
MAX_DEPTH = 32  # lists and objects inside each other
# Whole numbers are 64-bit, as Camunda's `long`: SQLite's variable column turned a bigger one into a
# float (its numeric affinity reads the JSON text as a REAL), so the stored value lost digits.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
NAME_MAX = 200  # characters of a variable's name: the `variable` table's name column (PostgreSQL refuses more)
RESERVED_KEYS = frozenset({"typename"})  # SpiffWorkflow's DictionaryConverter.restore reads it
_PLAIN_HINT = "only text, numbers, true/false, null, lists and objects with text keys can be stored"

Path = tuple[str | int, ...]


def describe_path(path: Path) -> str:
    """Write a variable path the way a designer reads it: `order.items[3]`, `d["a b"]`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.isidentifier():
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]" if text else repr(part)
    return text or "(the data)"


_limits = {"max_bytes": MAX_BYTES, "max_depth": MAX_DEPTH}


def whole_number(text: str, *, signed: bool = False, any_size: bool = False) -> int | None:
    """Return the whole number `text` writes in ASCII digits (after one '-' when `signed`), else None.

    `str.isdigit` also takes '²' and other Unicode digits, which `int()` refuses, and `int()` refuses
    more than 4,300 digits: text checked with `isdigit` and then given to `int()` failed inside it
    (a 500 on a page number, Python's own words under a form field). Beyond 64 bits (every id, count
    and number Polku keeps) None too, unless `any_size` (a form says "too large" itself): SQLite's
    driver cannot even compare a column with a bigger one (an id of 31 digits was a 500).
    """
    digits = text[1:] if signed and text.startswith("-") else text
    if not (0 < len(digits) <= 4000 and digits.isascii() and digits.isdigit()):
        return None
    number = int(text)
    return number if any_size or INT_MIN <= number <= INT_MAX else None


def configure(*, max_bytes: int, max_depth: int) -> None:
    """Set this process's default limits (POLKU_DATA_MAX_BYTES, POLKU_DATA_MAX_DEPTH)."""
    _limits.update(max_bytes=max_bytes, max_depth=max_depth)


def check_plain(data: dict, *, what: str, max_bytes: int | None = None, max_depth: int | None = None) -> dict:
    """Return `data` unchanged if it is JSON-plain, within `max_bytes` as JSON and `max_depth` deep.

    `what` names the data in the message ("script result", "message payload", "retry data").
    Raises: DataInvalid (an InvalidInput) naming the variable path and the rule it breaks.
    """
    if not isinstance(data, dict):
        raise _refuse(what, (), f"is a {kind_of(data)}; the data must be an object of named variables")
    max_bytes = _limits["max_bytes"] if max_bytes is None else max_bytes
    max_depth = _limits["max_depth"] if max_depth is None else max_depth
    for key in data:
        if isinstance(key, str) and len(key) > NAME_MAX:
            raise _refuse(what, (key[:40] + "…",), f"is a name of {len(key):,} characters; a variable's name "
                                                   f"can have at most {NAME_MAX}")
    total = 0
    for path, value, depth in _walk(data, max_depth, what):
        total += _size(value, path, what)
        if total > max_bytes:
            raise _refuse(what, path[:1], f"makes the data larger than {max_bytes:,} bytes as JSON")
    return data


def _walk(data: dict, max_depth: int, what: str) -> Iterator[tuple[Path, Any, int]]:
    """Yield every (path, value, depth) under `data`, refusing what JSON cannot hold."""
    stack: list[tuple[Path, Any, int]] = [((), data, 0)]
    while stack:
        path, value, depth = stack.pop()
        yield path, value, depth
        if isinstance(value, dict):
            if depth >= max_depth and value:
                raise _refuse(what, path, f"nests lists and objects deeper than {max_depth} levels")
            for key, item in value.items():
                if not isinstance(key, str):
                    raise _refuse(what, path, f"has a key {key!r} that is not text; "
                                                  "object keys must be text")
                if not key.isascii():
                    _utf8_size(key, what, path)
                if key in RESERVED_KEYS:
                    raise _refuse(what, (*path, key), f'uses the reserved key "{key}" '
                                                          "(the engine's storage format reads it)")
                stack.append(((*path, key), item, depth + 1))
        elif isinstance(value, list):
            if depth >= max_depth and value:
                raise _refuse(what, path, f"nests lists and objects deeper than {max_depth} levels")
            stack.extend(((*path, index), item, depth + 1) for index, item in enumerate(value))


def _size(value: Any, path: Path, what: str) -> int:
    """Return about how many bytes `value` adds to the JSON text; refuse what is not plain."""
    kind = type(value)
    if kind is str or isinstance(value, str):
        if value.isascii():
            return len(value) + 2 + (value.count("\n") + value.count('"') + value.count("\\"))
        return _utf8_size(value, what, path) + 2
    if kind is bool or value is None:
        return 5
    if kind is int or (isinstance(value, int) and not isinstance(value, bool)):
        if not INT_MIN <= value <= INT_MAX:
            raise _refuse(what, path, "is a whole number beyond 64 bits (more than 9,223,372,036,854,775,807 "
                                      "either way), which a case variable cannot hold exactly; store it as text")
        return value.bit_length() // 3 + 2
    if kind is float or isinstance(value, float):
        if not math.isfinite(value):
            raise _refuse(what, path, f"is {value}, which JSON cannot hold; use null or a number")
        return 24
    if isinstance(value, (dict, list)):
        return len(value) + 2
    if isinstance(value, (date, timedelta)):
        raise _refuse(what, path, f"is a {kind_of(value)}; store dates and times as text, e.g. "
                                  "with .isoformat()")
    raise _refuse(what, path, f"is a {kind_of(value)}; {_PLAIN_HINT}")


def _utf8_size(text: str, what: str, path: Path) -> int:
    """Return the UTF-8 size of text; refuse a lone surrogate, which no database text column takes."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as err:
        raise _refuse(what, path, f"holds {text[err.start]!r}, half of a character (a lone surrogate), "
                                  "which stored text cannot hold") from None


def _refuse(what: str, path: Path, rule: str) -> DataInvalid:
    return DataInvalid(what, describe_path(path), rule)


def kind_of(value: Any) -> str:
    """Name the type of `value` in words ("set", "generator", "function", "datetime object")."""
    names: dict[type, str] = {set: "set", frozenset: "set", tuple: "tuple", bytes: "bytes value"}
    if type(value) in names:
        return names[type(value)]
    if hasattr(value, "__next__") or type(value).__name__ == "generator":
        return "generator"
    if callable(value):
        return "function"
    return f"{type(value).__name__} object"

