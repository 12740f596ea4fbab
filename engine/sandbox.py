"""The restricted evaluator for every expression and script in a BPMN or DMN file.

Gateway conditions, script tasks, timer and due-date expressions and DMN cells all run here,
never through plain eval/exec. Source is compiled once (cached) with RestrictedPython and a
stricter policy: no imports, classes, names or attributes starting with "_", interpreter
internals (frames, code objects) or dangerous builtins. At run time every attribute read,
item write, loop iteration and function call goes through guards that refuse module access,
count steps against a budget (`ScriptTimeout`) and refuse huge results (of `*`, `**`, `<<`, `+`,
`%`, `range()` and the padding/replace/join string methods, each and in total per run).
Only `engine/spiff.py` and the runtime call this; it knows nothing of SpiffWorkflow.
"""

from __future__ import annotations

import ast
import copy
import functools
import operator
import re
import threading
import types
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from RestrictedPython import RestrictingNodeTransformer, compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Guards import guarded_unpack_sequence
from RestrictedPython.PrintCollector import PrintCollector
from RestrictedPython.transformer import INSPECT_ATTRIBUTES

__all__ = ["SAFE_FUNCTIONS", "SandboxViolation", "ScriptTimeout", "check_expression", "check_script",
           "evaluate", "execute"]

FILENAME = "<string>"  # what tracebacks of sandboxed code name as their file
MAX_SOURCE = 100_000  # characters in one expression or script
MAX_ITEMS = 1_000_000  # length of a string, list or range built in one operation
MAX_INT_BITS = 100_000  # about 30,000 decimal digits
MAX_ALLOCATED = 50_000_000  # characters or items built by guarded operations in one run
_WHERE = "in process expressions"
_UNAVAILABLE = frozenset({  # dangerous builtins: naming one gives a refusal, not a NameError
    "open", "eval", "exec", "compile", "globals", "locals", "vars", "getattr", "setattr", "delattr",
    "hasattr", "breakpoint", "memoryview", "super", "exit", "quit",
})
# calling these is refused when compiling; as plain names they may still be data ("type", "id")
_FORBIDDEN_CALLS = _UNAVAILABLE | {"type", "input", "help", "dir", "object", "print", "id"}
_REFUSED_ATTRIBUTES = INSPECT_ATTRIBUTES | {"format", "format_map"}
_SEQUENCES = (str, bytes, list, tuple)


class SandboxViolation(Exception):
    """An expression or script was refused, before or while it ran; `lineno` says where."""

    def __init__(self, message: str, lineno: int | None = None):
        super().__init__(message)
        self.message = message
        self.lineno = lineno

    def __str__(self) -> str:
        return f"{self.message} (line {self.lineno})" if self.lineno else self.message


class ScriptTimeout(SandboxViolation):
    """The step budget (loop iterations and function calls) ran out."""


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's policy, stricter, with designer-readable messages and step counting."""

    def check_name(self, node: ast.AST, name: str | None, allow_magic_methods: bool = False) -> None:
        if name and name.startswith("_") and name != "_":
            self.error(node, f'the name "{name}" is not allowed {_WHERE} (names starting with "_" are '
                             'internal)')
        else:
            super().check_name(node, name, allow_magic_methods=False)  # type: ignore[arg-type]  # RestrictedPython's stub is narrower than its use

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        if node.attr.startswith("_"):
            self.error(node, f'".{node.attr}" is not allowed {_WHERE} (attributes starting with "_" are '
                             'internal)')
        elif node.attr in ("format", "format_map"):
            self.error(node, f'".{node.attr}()" is not allowed {_WHERE}; use an f-string')
        elif node.attr in _REFUSED_ATTRIBUTES:
            self.error(node, f'".{node.attr}" is not allowed {_WHERE} (it exposes interpreter internals)')
        return super().visit_Attribute(node)

    def visit_FormattedValue(self, node: ast.FormattedValue) -> Any:
        parts = node.format_spec.values if isinstance(node.format_spec, ast.JoinedStr) else []
        texts = [str(part.value) for part in parts if isinstance(part, ast.Constant)]
        if len(texts) < len(parts):
            self.error(node, f"computed format specifications are not allowed {_WHERE}")
        elif re.search(r"\d{7,}", "".join(texts)):  # a width or precision of a million or more
            self.error(node, f"format widths above {MAX_ITEMS:,} are not allowed {_WHERE}")
        return super().visit_FormattedValue(node)

    def visit_Import(self, node: ast.AST) -> Any:
        self.error(node, f"imports are not allowed {_WHERE}")

    visit_ImportFrom = visit_Import

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        self.error(node, f"class definitions are not allowed {_WHERE}")

    def visit_Call(self, node: ast.Call) -> Any:
        if isinstance(node.func, ast.Name) and node.func.id in _FORBIDDEN_CALLS:
            hint = "; use isinstance(value, int)" if node.func.id == "type" else ""
            self.error(node, f"{node.func.id}() is not available {_WHERE}{hint}")
        return super().visit_Call(node)

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        node = super().visit_BinOp(node)  # type: ignore[assignment]
        guard = _GUARDED_OPS.get(type(node.op))
        if guard is None:
            return node
        call = ast.Call(func=ast.Name(guard, ast.Load()), args=[node.left, node.right], keywords=[])
        return ast.fix_missing_locations(ast.copy_location(call, node))

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        # d['k'] += 1 becomes d['k'] = d['k'] + 1 when evaluating the target twice has no effect
        if isinstance(node.target, ast.Subscript) and _is_plain(node.target):
            load = copy.deepcopy(node.target)
            load.ctx = ast.Load()
            assign = ast.Assign(targets=[node.target], value=ast.BinOp(load, node.op, node.value))
            return self.visit(ast.fix_missing_locations(ast.copy_location(assign, node)))
        return super().visit_AugAssign(node)

    def visit_While(self, node: ast.While) -> Any:
        node = super().visit_While(node)  # type: ignore[assignment]
        node.body.insert(0, _step_stmt(node))
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        node = super().visit_FunctionDef(node)  # type: ignore[assignment]
        node.body.insert(0, _step_stmt(node))
        return node

    def visit_Lambda(self, node: ast.Lambda) -> Any:
        node = super().visit_Lambda(node)  # type: ignore[assignment]
        step = ast.Call(func=ast.Name("_step_", ast.Load()), args=[], keywords=[])
        node.body = ast.copy_location(ast.BoolOp(ast.Or(), [step, node.body]), node.body)
        return ast.fix_missing_locations(node)


_GUARDED_OPS = {ast.Mult: "_mul_", ast.Pow: "_pow_", ast.LShift: "_lshift_", ast.Add: "_add_",
                ast.Mod: "_mod_"}


def _is_plain(node: ast.AST) -> bool:
    """Tell whether evaluating `node` twice is harmless: names, constants and subscripts of them."""
    if isinstance(node, ast.Subscript):
        return _is_plain(node.value) and _is_plain(node.slice)
    return isinstance(node, (ast.Name, ast.Constant))


def _step_stmt(node: ast.AST) -> ast.stmt:
    call = ast.Call(func=ast.Name("_step_", ast.Load()), args=[], keywords=[])
    return ast.fix_missing_locations(ast.copy_location(ast.Expr(call), node))


@functools.lru_cache(maxsize=4096)
def _compile(source: str, mode: str) -> types.CodeType | SandboxViolation:
    """Compile restricted source once; return the code or the (not raised) refusal."""
    if len(source) > MAX_SOURCE:
        return SandboxViolation(f"the {mode == 'eval' and 'expression' or 'script'} is longer "
                                f"than {MAX_SOURCE:,} characters")
    try:
        tree = ast.parse(source, FILENAME, mode)
    except SyntaxError as exc:
        return SandboxViolation(f"syntax error: {exc.msg}", exc.lineno)
    except (ValueError, RecursionError, MemoryError) as exc:
        return SandboxViolation(f"cannot read the {mode == 'eval' and 'expression' or 'script'}: {exc}")
    compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    result = compiler(tree, filename=FILENAME, policy=_Policy)  # type: ignore[arg-type]
    if result.errors:
        match = re.match(r"Line (\d+): (.*)", result.errors[0], re.DOTALL)
        lineno, message = (int(match[1]), match[2]) if match else (None, result.errors[0])
        return SandboxViolation(message.rstrip("."), lineno)
    return result.code  # type: ignore[no-any-return,return-value]


def _code(source: str, mode: str) -> types.CodeType:
    compiled = _compile(source, mode)
    if isinstance(compiled, SandboxViolation):
        raise SandboxViolation(compiled.message, compiled.lineno)
    return compiled


def check_expression(source: str) -> None:
    """Refuse `source` unless it compiles restricted as one expression.

    Raises: SandboxViolation (with a message and `lineno`).
    """
    _code(source, "eval")


def check_script(source: str) -> None:
    """Refuse `source` unless it compiles restricted as a script.

    Raises: SandboxViolation (with a message and `lineno`).
    """
    _code(source, "exec")


# --- run-time guards ---------------------------------------------------------------------------

_current = threading.local()  # .budget: the _Budget of the run on this thread


def _too_long(value: Any, length: int) -> None:
    if length > MAX_ITEMS:
        unit = "characters" if isinstance(value, (str, bytes)) else "items"
        raise SandboxViolation(f"a {type(value).__name__} of {length:,} {unit} is too large {_WHERE} "
                               f"(at most {MAX_ITEMS:,})")
    budget = getattr(_current, "budget", None)
    if budget is not None:  # many results below the limit must not add up without bound either
        budget.allocate(length)


def _too_many_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        digits = MAX_INT_BITS * 3 // 10
        raise SandboxViolation(f"a number of more than {digits:,} digits is too large {_WHERE}")


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
        for width in _PRINTF_SIZES.findall(str(a)):
            if "*" in width or max(int(n or 0) for n in width.split(".")) > MAX_ITEMS:
                raise SandboxViolation(f"format widths above {MAX_ITEMS:,} or given by '*' "
                                       f"are not allowed {_WHERE}")
    return a % b


def _sized(name: str, length: Callable[..., int]) -> Callable[..., Any]:
    """Wrap the str/bytes method `name` so that it refuses results longer than MAX_ITEMS."""
    def method(text: Any, *args: Any) -> Any:
        if name == "join":
            args = (list(args[0]),)  # a generator is read once, here
        _too_long(text, length(text, *args))
        return getattr(text, name)(*args)
    return method


_STRING_METHODS: dict[str, Callable[..., Any]] = {
    name: _sized(name, length) for name, length in {  # type: ignore[arg-type]
        "ljust": lambda s, width, *_: width, "rjust": lambda s, width, *_: width,
        "center": lambda s, width, *_: width, "zfill": lambda s, width: width,
        "expandtabs": lambda s, tabsize=8: len(s) * max(tabsize, 1),
        "replace": lambda s, old, new, count=-1: len(s) + max(len(new) - len(old), 0) * (
            (s.count(old) if old else len(s) + 1) if count < 0 else count),
        "join": lambda s, items: len(s) * len(items) + sum(len(item) for item in items),
    }.items()
}
_PRINTF_SIZES = re.compile(r"%(?:\([^)]*\))?[-#0 +]*((?:\*|\d+)?(?:\.(?:\*|\d+))?)")


_INPLACE = {"%=": _mod, "*=": _mul, "**=": _pow, "<<=": _lshift, "+=": _add, "-=": operator.sub,
            "/=": operator.truediv, "//=": operator.floordiv, ">>=": operator.rshift,
            "|=": operator.or_, "&=": operator.and_, "^=": operator.xor, "@=": operator.matmul}


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    if op == "+=" and isinstance(target, list):
        _too_long(target, len(target) + (len(value) if isinstance(value, _SEQUENCES) else 0))
        target += value  # keep list identity, as Python does
        return target
    return _INPLACE[op](target, value)


def _getattr(obj: Any, name: str) -> Any:
    if isinstance(obj, types.ModuleType):
        raise SandboxViolation(f"modules are not available {_WHERE}")
    if name.startswith("_") or name in _REFUSED_ATTRIBUTES:
        raise SandboxViolation(f'".{name}" is not allowed {_WHERE}')
    if name in _STRING_METHODS and (type(obj) in (str, bytes) or obj is str or obj is bytes):
        method = _STRING_METHODS[name]
        return method if isinstance(obj, type) else lambda *args: method(obj, *args)
    return getattr(obj, name)


def _write(obj: Any) -> Any:
    if type(obj) in (dict, list):
        return obj
    raise SandboxViolation(f"a {type(obj).__name__} cannot be changed {_WHERE}; only lists and dicts can")


def _range(*args: int) -> range:
    result = range(*args)
    try:
        _too_long(result, len(result))
    except OverflowError:  # longer than sys.maxsize
        _too_long(result, MAX_ITEMS + 1)
    return result


def _iter_unpack_sequence(iterable: Any, spec: dict, getiter: Callable) -> Iterator[Any]:
    for item in getiter(iterable):  # count each iteration once, not each unpacked value
        yield guarded_unpack_sequence(item, spec, iter)


def _timeout(limit: int) -> ScriptTimeout:
    return ScriptTimeout(f"stopped after {limit:,} steps (loop iterations and function calls); "
                         "is there an endless loop?")


class _Budget:
    """The steps left to one run (a step is one loop iteration or function call) and its allocations."""

    __slots__ = ("allocated", "left", "limit")

    def __init__(self, limit: int):
        self.left = self.limit = limit
        self.allocated = 0

    def allocate(self, length: int) -> None:
        self.allocated += max(length, 0)
        if self.allocated > MAX_ALLOCATED:
            raise SandboxViolation(f"more than {MAX_ALLOCATED:,} characters or items were built {_WHERE}")

    def step(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise _timeout(self.limit)

    def iterate(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.step()
            yield item


def _default_now() -> datetime:
    return datetime.now(UTC)


SAFE_FUNCTIONS: dict[str, Any] = {
    f.__name__: f for f in (abs, all, any, bool, chr, dict, divmod, enumerate, float, frozenset, int,
                            isinstance, len, list, max, min, ord, repr, reversed, round, set, sorted,
                            str, sum, tuple, zip)
} | {"range": _range, "datetime": datetime, "date": date, "timedelta": timedelta, "timezone": timezone,
     "now": _default_now, "isoformat": lambda value: value.isoformat()}

_GUARDS: dict[str, Any] = {
    "_getattr_": _getattr, "_getitem_": operator.getitem, "_write_": _write, "_inplacevar_": _inplacevar,
    "_apply_": lambda f, *args, **kwargs: f(*args, **kwargs), "_print_": PrintCollector,
    "_iter_unpack_sequence_": _iter_unpack_sequence,
    "_unpack_sequence_": lambda it, spec, getiter: guarded_unpack_sequence(it, spec, iter),
    "_mul_": _mul, "_pow_": _pow, "_lshift_": _lshift, "_add_": _add, "_mod_": _mod,
}


@functools.lru_cache(maxsize=32)
def _builtins(clock: Callable[[], datetime] | None) -> dict[str, Any]:
    return SAFE_FUNCTIONS if clock is None else {**SAFE_FUNCTIONS, "now": clock}


def _run(code: types.CodeType, names: dict[str, Any], max_steps: int,
         clock: Callable[[], datetime] | None) -> tuple[Any, dict[str, Any]]:
    """Run `code` on a fresh namespace built from `names`; return its value and the namespace."""
    budget = _Budget(max_steps)
    scope = dict(names)
    scope.update(_GUARDS)  # after the data: data cannot replace a guard or __builtins__
    scope["__builtins__"] = _builtins(clock)
    scope["_step_"], scope["_getiter_"] = budget.step, budget.iterate
    previous, _current.budget = getattr(_current, "budget", None), budget
    try:
        value = eval(code, scope)  # restricted code in a guarded scope
    except SandboxViolation as exc:
        exc.lineno = exc.lineno or _sandbox_line(exc)
        raise
    except NameError as exc:
        if exc.name not in _UNAVAILABLE:
            raise
        raise SandboxViolation(f'"{exc.name}" is not available {_WHERE}', _sandbox_line(exc)) from None
    finally:
        _current.budget = previous
    if budget.left < 0:  # the script caught ScriptTimeout itself and carried on
        raise _timeout(max_steps)
    return value, scope


def _sandbox_line(exc: BaseException) -> int | None:
    """Return the line of the innermost sandboxed frame in the traceback of `exc`."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def evaluate(source: str, names: dict[str, Any], *, max_steps: int = 100_000,
             clock: Callable[[], datetime] | None = None) -> Any:
    """Evaluate one expression with `names` as its variables and return its value.

    Raises: SandboxViolation (refused), ScriptTimeout (step budget used up); errors of the
    expression itself (NameError, ZeroDivisionError, ...) pass through unchanged.
    """
    return _run(_code(source, "eval"), names, max_steps, clock)[0]


def execute(source: str, names: dict[str, Any], *, max_steps: int = 100_000,
            clock: Callable[[], datetime] | None = None) -> dict[str, Any]:
    """Run a script on a deep copy of `names`; return every variable it leaves behind.

    The result holds the input variables (changed or not) and new ones, without names starting
    with "_", functions, classes or modules. `names` itself is never changed.
    Raises: as `evaluate`.
    """
    code = _code(source, "exec")
    _, scope = _run(code, {k: _copy(v) for k, v in names.items()}, max_steps, clock)
    return {k: v for k, v in scope.items()
            if not (k.startswith("_") or callable(v) or isinstance(v, types.ModuleType))}


def _copy(value: Any) -> Any:
    try:
        return copy.deepcopy(value)
    except (TypeError, copy.Error):  # an uncopyable object (a module, a lock) is passed as it is
        return value
