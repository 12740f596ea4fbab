"""Run-time guards of sandboxed code: the budget of one run and the checks on what it builds.

`engine/sandbox.py` compiles restricted code so that every loop iteration and function call,
attribute read, item write and value-building operation calls one of the guards here. The
`Budget` of a run counts steps, watches the wall clock and totals what was built; the guards
refuse values over the per-value size limit before (or, where Python builds them in one go,
right after) they are made, and `Output` keeps what `print()` wrote. The limits come from
`engine/limits.py`. Nothing here imports SpiffWorkflow.
"""

from __future__ import annotations

import functools
import operator
import re
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from RestrictedPython.Guards import guarded_unpack_sequence
from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from . import limits as _limits

__all__ = ["GUARDS", "SAFE_FUNCTIONS", "Budget", "SandboxViolation", "ScriptTimeout", "Unavailable",
           "builtins_for", "default_now", "overtime"]

MAX_WIDTH = 1_000_000  # a printf or f-string width or precision
MAX_INT_BITS = 100_000  # about 30,000 decimal digits
WHERE = "in process expressions"
REFUSED_ATTRIBUTES = INSPECT_ATTRIBUTES | {"format", "format_map"}
_SEQUENCES = (str, bytes, list, tuple)


class SandboxViolation(Exception):
    """An expression or script was refused, before or while it ran; `lineno` says where.

    `limit` names the limit a running script broke ("time", "steps", "size", "memory",
    "recursion", "data"), or is None for a refusal of what the code tried to do.
    """

    limit: str | None = None

    def __init__(self, message: str, lineno: int | None = None, limit: str | None = None):
        super().__init__(message)
        self.message = message
        self.lineno = lineno
        self.limit = limit or type(self).limit

    def __str__(self) -> str:
        return f"{self.message} (line {self.lineno})" if self.lineno else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.message, self.lineno, self.limit)


class ScriptTimeout(SandboxViolation):
    """The step budget (loop iterations and function calls) or the time limit ran out."""

    limit = "steps"


current = threading.local()  # .budget: the Budget of the run on this thread


def _size_of(value: Any, length: int) -> int:
    """Return about how many bytes a value of `length` characters or items of this kind takes."""
    return length if isinstance(value, (str, bytes)) else length * 8


def _too_long(value: Any, length: int) -> None:
    budget = _budget()
    if _size_of(value, length) > budget.limits.max_bytes:
        unit = "characters" if isinstance(value, (str, bytes)) else "items"
        raise SandboxViolation(f"a {type(value).__name__} of {length:,} {unit} is too large {WHERE} "
                               f"(the size limit is {budget.limits.max_bytes:,} bytes per value)",
                               limit="size")
    budget.allocate(length)  # many results below the limit must not add up without bound either


def _budget() -> Budget:
    budget = getattr(current, "budget", None)
    return budget if budget is not None else Budget(_limits.current())


def _too_many_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        digits = MAX_INT_BITS * 3 // 10
        raise SandboxViolation(f"a number of more than {digits:,} digits is too large {WHERE} (the size limit "
                               "for numbers)", limit="size")


def _sized(value: Any) -> Any:
    if isinstance(value, (*_SEQUENCES, set, frozenset, dict)):
        _too_long(value, len(value))
    return value


def _mul(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int):
        _too_many_bits(a.bit_length() + b.bit_length())
    elif isinstance(b, int) and isinstance(a, _SEQUENCES):
        _too_long(a, len(a) * b)
    elif isinstance(a, int) and isinstance(b, _SEQUENCES):
        _too_long(b, len(b) * a)
    return a * b


def _pow(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1:
        _too_many_bits((abs(a).bit_length() - 1) * b)
    return a ** b


def _lshift(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and a and b > 0:
        _too_many_bits(a.bit_length() + b)
    return a << b


def _add(a: Any, b: Any) -> Any:
    if type(a) is type(b) and isinstance(a, _SEQUENCES):
        _too_long(a, len(a) + len(b))
    return a + b


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, (str, bytes)):  # printf-style formatting: refuse huge widths and precisions
        for width in _printf_sizes(a if isinstance(a, str) else a.decode("latin-1")):
            if width == "*" or int(width) > MAX_WIDTH:
                raise SandboxViolation(f"format widths above {MAX_WIDTH:,} or given by '*' are not allowed "
                                       f"{WHERE} (the size limit)", limit="size")
        return _sized(a % b)
    return a % b


def _printf_sizes(text: str) -> Iterator[str]:
    """Yield every width and precision of a printf-style format (as Python's own parser reads it)."""
    position, end = 0, len(text)
    while (position := text.find("%", position)) >= 0:
        position += 1
        if position < end and text[position] == "(":  # a mapping key: parentheses may nest
            depth = 0
            while position < end:
                depth += {"(": 1, ")": -1}.get(text[position], 0)
                position += 1
                if depth == 0:
                    break
        match = _PRINTF_SPEC.match(text, position)
        if match is None:
            continue
        position = match.end()
        yield from (part for part in match.groups() if part)


_PRINTF_SPEC = re.compile(r"[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _str(value: Any = "", *args: Any) -> str:
    return _sized(str(value, *args))  # type: ignore[no-any-return]


def _repr(value: Any) -> str:
    return _sized(repr(value))  # type: ignore[no-any-return]


def _sum(items: Iterable[Any], start: Any = 0) -> Any:
    if isinstance(start, (int, float, complex)):
        return sum(items, start)
    total = start  # lists or strings: every partial sum is size-checked (sum([...], []) is quadratic)
    for item in items:
        total = _add(total, item)
    return total


def _sized_method(name: str, length: Callable[..., int]) -> Callable[..., Any]:
    """Wrap the method `name` so that it refuses results over the size limit before building them."""
    def method(obj: Any, *args: Any) -> Any:
        if name in ("join", "extend"):
            args = (list(args[0]),)  # a generator is read once, here
        _too_long(obj, length(obj, *args))
        return getattr(obj, name)(*args)
    return method


def _translated_length(text: Any, table: Any) -> int:
    replacements = table.values() if isinstance(table, dict) else table if isinstance(table, (list, tuple)) else ()
    longest = max((len(r) for r in replacements if isinstance(r, (str, bytes))), default=1)
    return len(text) * max(longest, 1)


_STRING_METHODS: dict[str, Callable[..., Any]] = {
    name: _sized_method(name, length) for name, length in {  # type: ignore[arg-type]
        "ljust": lambda s, width, *_: width, "rjust": lambda s, width, *_: width,
        "center": lambda s, width, *_: width, "zfill": lambda s, width: width,
        "expandtabs": lambda s, tabsize=8: len(s) * max(tabsize, 1),
        "replace": lambda s, old, new, count=-1: len(s) + max(len(new) - len(old), 0) * (
            (s.count(old) if old else len(s) + 1) if count < 0 else count),
        "join": lambda s, items: len(s) * len(items) + sum(len(item) for item in items),
        "translate": _translated_length,
    }.items()
}
_LIST_METHODS = {"extend": _sized_method("extend", lambda lst, items: len(lst) + len(items))}


def _to_bytes(number: int) -> Callable[..., bytes]:
    def to_bytes(length: int = 1, *args: Any, **kwargs: Any) -> bytes:
        _too_long(b"", length)
        return number.to_bytes(length, *args, **kwargs)
    return to_bytes


_INPLACE = {"%=": _mod, "*=": _mul, "**=": _pow, "<<=": _lshift, "+=": _add, "-=": operator.sub,
            "/=": operator.truediv, "//=": operator.floordiv, ">>=": operator.rshift,
            "|=": operator.or_, "&=": operator.and_, "^=": operator.xor, "@=": operator.matmul}


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    if op == "+=" and isinstance(target, list):
        _too_long(target, len(target) + (len(value) if isinstance(value, _SEQUENCES) else 0))
        target += value  # keep list identity, as Python does
        return target
    return _INPLACE[op](target, value)


class Unavailable:
    """Stands in for a value of the data that cannot reach an evaluator process (a module, a lock)."""

    def __init__(self, kind: str):
        self.kind = kind

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise SandboxViolation(f"a {self.kind} from the data cannot be used {WHERE}")


def _getattr(obj: Any, name: str) -> Any:
    if isinstance(obj, types.ModuleType) or (isinstance(obj, Unavailable) and obj.kind == "module"):
        raise SandboxViolation(f"modules are not available {WHERE}")
    if isinstance(obj, Unavailable):
        obj()
    if name.startswith("_") or name in REFUSED_ATTRIBUTES:
        raise SandboxViolation(f'".{name}" is not allowed {WHERE}')
    if name in _STRING_METHODS and (type(obj) in (str, bytes) or obj is str or obj is bytes):
        method = _STRING_METHODS[name]
        return method if isinstance(obj, type) else lambda *args: method(obj, *args)
    if name in _LIST_METHODS and type(obj) is list:
        return lambda *args: _LIST_METHODS[name](obj, *args)
    if name == "to_bytes" and type(obj) is int:
        return _to_bytes(obj)
    return getattr(obj, name)


def _write(obj: Any) -> Any:
    if type(obj) in (dict, list):
        return obj
    raise SandboxViolation(f"a {type(obj).__name__} cannot be changed {WHERE}; only lists and dicts can")


def _range(*args: int) -> range:
    result = range(*args)
    try:
        _too_long(result, len(result))
    except OverflowError:  # longer than sys.maxsize
        _too_long(result, 2**62)
    return result


def _iter_unpack_sequence(iterable: Any, spec: dict, getiter: Callable) -> Iterator[Any]:
    for item in getiter(iterable):  # count each iteration once, not each unpacked value
        yield guarded_unpack_sequence(item, spec, iter)


class Output:
    """Collects what print() writes in one run, up to the output limit; `printed` reads it."""

    def __init__(self, limit: int):
        self.parts: list[str] = []
        self.size = 0
        self.limit = limit
        self.cut = False

    def write(self, text: str) -> None:
        room = self.limit - self.size
        if len(text) > room:
            text, self.cut = text[:max(room, 0)], True
        self.parts.append(text)
        self.size += len(text)

    def _call_print(self, *objects: Any, sep: str | None = " ", end: str | None = "\n", **kwargs: Any) -> None:
        if kwargs.get("file") is not None:
            raise SandboxViolation(f"print(file=...) is not available {WHERE}")
        sep, end = " " if sep is None else str(sep), "\n" if end is None else str(end)
        self.write(sep.join(_str(o) for o in objects) + end)

    def __call__(self) -> str:
        return "".join(self.parts)

    def text(self) -> str:
        """Return what was printed, with a note when it was cut at the limit."""
        return self() + (f"\n… (output cut at {self.limit:,} characters)" if self.cut else "")


def step_timeout(limit: int) -> ScriptTimeout:
    return ScriptTimeout(f"stopped after {limit:,} steps (loop iterations and function calls; the step "
                         "limit); is there an endless loop?", limit="steps")


def overtime(seconds: float) -> ScriptTimeout:
    return ScriptTimeout(f"stopped after running longer than the time limit of {seconds:g} s", limit="time")


class Budget:
    """The steps, time and allocations left to one run (a step is one loop iteration or function call)."""

    __slots__ = ("allocated", "deadline", "left", "limit", "limits", "output")

    def __init__(self, limits: _limits.Limits):
        self.limits = limits
        self.left = self.limit = limits.steps
        self.allocated = 0
        self.deadline = time.monotonic() + limits.timeout
        self.output = Output(limits.output)

    def allocate(self, length: int) -> None:
        self.allocated += max(length, 0)
        if self.allocated > self.limits.max_allocated:
            raise SandboxViolation(f"more than {self.limits.max_allocated:,} characters or items were built "
                                   f"{WHERE} (the size limit per run)", limit="size")
        self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise overtime(self.limits.timeout)

    def step(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise step_timeout(self.limit)
        if not self.left & 63:
            self.check_time()

    def iterate(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.step()
            yield item


def default_now() -> datetime:
    return datetime.now(UTC)


SAFE_FUNCTIONS: dict[str, Any] = {
    f.__name__: f for f in (abs, all, any, bool, chr, dict, divmod, enumerate, float, frozenset, int,
                            isinstance, len, list, max, min, ord, repr, reversed, round, set, sorted,
                            str, sum, tuple, zip)
} | {"range": _range, "sum": _sum, "datetime": datetime, "date": date, "timedelta": timedelta,
     "timezone": timezone, "now": default_now, "isoformat": lambda value: value.isoformat()}

GUARDS: dict[str, Any] = {
    "_getattr_": _getattr, "_getitem_": operator.getitem, "_write_": _write, "_inplacevar_": _inplacevar,
    "_apply_": lambda f, *args, **kwargs: f(*args, **kwargs),
    "_iter_unpack_sequence_": _iter_unpack_sequence,
    "_unpack_sequence_": lambda it, spec, getiter: guarded_unpack_sequence(it, spec, iter),
    "_mul_": _mul, "_pow_": _pow, "_lshift_": _lshift, "_add_": _add, "_mod_": _mod,
    "_sized_": _sized, "_str_": _str, "_repr_": _repr,
}


@functools.lru_cache(maxsize=32)
def builtins_for(clock: Callable[[], datetime] | None) -> dict[str, Any]:
    return SAFE_FUNCTIONS if clock is None else {**SAFE_FUNCTIONS, "now": clock}
