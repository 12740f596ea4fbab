"""The restricted evaluator for every expression and script in a BPMN or DMN file.

Gateway conditions, script tasks, timer and due-date expressions, assignee templates, message
payloads and DMN cells all run here, never through plain eval/exec. Source is compiled once
(cached) with RestrictedPython and a stricter policy: no imports, classes, names or attributes
starting with "_", interpreter internals (frames, code objects) or dangerous builtins.

Every run is bounded (`engine/limits.py` says how, and holds the configured limits): guards
(`engine/guards.py`) on every attribute read, item write, loop iteration and function call count steps, check the wall
clock and refuse values larger than the per-value limit (`*`, `**`, `<<`, `+`, `%`, `range()`,
`str()`/`repr()`, f-strings, starred displays, `sum()`, the padding/replace/join/translate
string methods, `list.extend`, `int.to_bytes`), each and in total per run. Code whose cost is
not bounded by reading it runs in an evaluator process that is killed at the time limit and has
a memory ceiling; every breach raises a `SandboxViolation` naming the limit.
Only `engine/spiff.py` and the runtime call this; it knows nothing of SpiffWorkflow.
"""

from __future__ import annotations

import ast
import copy
import functools
import pickle
import re
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from RestrictedPython import RestrictingNodeTransformer, compile_restricted_eval, compile_restricted_exec

from . import guards
from . import limits as _limits
from .guards import (
    GUARDS,
    MAX_WIDTH,
    REFUSED_ATTRIBUTES,
    SAFE_FUNCTIONS,
    WHERE,
    Budget,
    SandboxViolation,
    ScriptTimeout,
    Unavailable,
    builtins_for,
    default_now,
    overtime,
    step_timeout,
)
from .values import kind_of

__all__ = ["SAFE_FUNCTIONS", "SandboxViolation", "ScriptRun", "ScriptTimeout", "check_expression",
           "check_script", "evaluate", "execute", "run_script"]

FILENAME = "<string>"  # what tracebacks of sandboxed code name as their file
MAX_SOURCE = 100_000  # characters in one expression or script
MAX_BOUNDED_SOURCE = 1_000  # longer expressions always go to the evaluator process
_UNAVAILABLE = frozenset({  # dangerous builtins: naming one gives a refusal, not a NameError
    "open", "eval", "exec", "compile", "globals", "locals", "vars", "getattr", "setattr", "delattr",
    "hasattr", "breakpoint", "memoryview", "super", "exit", "quit",
})
# calling these is refused when compiling; as plain names they may still be data ("type", "id")
_FORBIDDEN_CALLS = _UNAVAILABLE | {"type", "input", "help", "dir", "object", "id"}


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's policy, stricter, with designer-readable messages and step counting."""

    def check_name(self, node: ast.AST, name: str | None, allow_magic_methods: bool = False) -> None:
        if name and name.startswith("_") and name != "_":
            self.error(node, f'the name "{name}" is not allowed {WHERE} (names starting with "_" are '
                             'internal)')
        else:
            super().check_name(node, name, allow_magic_methods=False)  # type: ignore[arg-type]  # RestrictedPython's stub is narrower than its use

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        if node.attr.startswith("_"):
            self.error(node, f'".{node.attr}" is not allowed {WHERE} (attributes starting with "_" are '
                             'internal)')
        elif node.attr in ("format", "format_map"):
            self.error(node, f'".{node.attr}()" is not allowed {WHERE}; use an f-string')
        elif node.attr in REFUSED_ATTRIBUTES:
            self.error(node, f'".{node.attr}" is not allowed {WHERE} (it exposes interpreter internals)')
        return super().visit_Attribute(node)

    def visit_FormattedValue(self, node: ast.FormattedValue) -> Any:
        parts = node.format_spec.values if isinstance(node.format_spec, ast.JoinedStr) else []
        texts = [str(part.value) for part in parts if isinstance(part, ast.Constant)]
        if len(texts) < len(parts):
            self.error(node, f"computed format specifications are not allowed {WHERE}")
        elif re.search(r"\d{7,}", "".join(texts)):  # a width or precision of a million or more
            self.error(node, f"format widths above {MAX_WIDTH:,} are not allowed {WHERE}")
        return super().visit_FormattedValue(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> Any:
        return _checked(super().visit_JoinedStr(node), node)

    def visit_List(self, node: ast.List) -> Any:
        visited = super().visit_List(node)
        starred = isinstance(node.ctx, ast.Load) and any(isinstance(e, ast.Starred) for e in node.elts)
        return _checked(visited, node) if starred else visited

    visit_Tuple = visit_List  # type: ignore[assignment]

    def visit_Set(self, node: ast.Set) -> Any:
        visited = super().visit_Set(node)
        return _checked(visited, node) if any(isinstance(e, ast.Starred) for e in node.elts) else visited

    def visit_Import(self, node: ast.AST) -> Any:
        self.error(node, f"imports are not allowed {WHERE}")

    visit_ImportFrom = visit_Import

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        self.error(node, f"class definitions are not allowed {WHERE}")

    def visit_Call(self, node: ast.Call) -> Any:
        if isinstance(node.func, ast.Name) and node.func.id in _FORBIDDEN_CALLS:
            hint = "; use isinstance(value, int)" if node.func.id == "type" else ""
            self.error(node, f"{node.func.id}() is not available {WHERE}{hint}")
        node = super().visit_Call(node)  # type: ignore[assignment]
        if isinstance(node.func, ast.Name) and node.func.id in _GUARDED_CALLS:  # str(), repr()
            node.func = ast.copy_location(ast.Name(_GUARDED_CALLS[node.func.id], ast.Load()), node.func)
        return node

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
_GUARDED_CALLS = {"str": "_str_", "repr": "_repr_"}


def _checked(node: Any, where: ast.AST) -> ast.expr:
    """Wrap an expression that builds a value in a size check of its result."""
    call = ast.Call(func=ast.Name("_sized_", ast.Load()), args=[node], keywords=[])
    return ast.fix_missing_locations(ast.copy_location(call, where))


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
    what = "expression" if mode == "eval" else "script"
    if len(source) > MAX_SOURCE:
        return SandboxViolation(f"the {what} is longer than {MAX_SOURCE:,} characters")
    try:
        tree = ast.parse(source, FILENAME, mode)
    except SyntaxError as exc:
        return SandboxViolation(f"syntax error: {exc.msg}", exc.lineno)
    except (ValueError, RecursionError, MemoryError) as exc:
        return SandboxViolation(f"cannot read the {what}: {exc}")
    if mode == "eval" and (call := _print_call(tree)) is not None:
        return SandboxViolation("print() is not available in expressions; only scripts can print",
                                call.lineno)
    compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    result = compiler(tree, filename=FILENAME, policy=_Policy)  # type: ignore[arg-type]
    if result.errors:
        match = re.match(r"Line (\d+): (.*)", result.errors[0], re.DOTALL)
        lineno, message = (int(match[1]), match[2]) if match else (None, result.errors[0])
        return SandboxViolation(message.rstrip("."), lineno)
    return result.code  # type: ignore[no-any-return,return-value]


def _print_call(tree: ast.AST) -> ast.Call | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            return node
    return None


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


# --- which expressions may run in the calling thread ----------------------------------------------

_BOUNDED_NODES = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.BinOp, ast.Add, ast.Sub, ast.Div, ast.FloorDiv,
    ast.BitAnd, ast.BitOr, ast.BitXor, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd, ast.Invert, ast.Compare,
    ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is, ast.IsNot, ast.IfExp,
    ast.Name, ast.Load, ast.Constant, ast.Attribute, ast.Subscript, ast.Slice, ast.Tuple, ast.List, ast.Set,
    ast.Dict, ast.Call, ast.keyword,
)
# straight-line script statements (no loops, functions or lambdas): each runs once
_BOUNDED_STATEMENTS = (ast.Module, ast.Assign, ast.AugAssign, ast.If, ast.Delete, ast.Pass, ast.Expr, ast.Store,
                       ast.Del)
# calls whose cost is at most about linear in data the expression cannot enlarge by itself
_BOUNDED_CALLS = frozenset({"len", "abs", "bool", "int", "float", "round", "isinstance", "now", "min", "max",
                            "any", "all", "date", "datetime", "timedelta", "isoformat"})
_BOUNDED_METHODS = frozenset({"get", "isoformat", "lower", "upper", "strip", "startswith", "endswith", "keys",
                              "values", "items", "date", "fromisoformat", "weekday", "split"})


@functools.lru_cache(maxsize=4096)
def _is_bounded(source: str, mode: str = "eval") -> bool:
    """Tell whether an expression's cost is bounded by reading it, so it may run in this thread.

    Bounded: no loops, comprehensions, lambdas, f-strings, `*`/`**`/`%`/`<<`, starred values or
    calls other than a few cheap builtins and non-mutating methods; short. Such an expression does
    a fixed number of operations, each at most about linear in the (size-limited) case data, and
    cannot change it. A bounded script is a few such statements (assignments, `if`, `del`, `print`)
    run once each on a copy of the data. Everything else runs in an evaluator process.
    """
    if len(source) > MAX_BOUNDED_SOURCE:
        return False
    try:
        tree = ast.parse(source, FILENAME, mode)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    for node in ast.walk(tree):
        if not isinstance(node, _BOUNDED_NODES) and not (mode == "exec" and isinstance(node, _BOUNDED_STATEMENTS)):
            return False
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                if func.id not in _BOUNDED_CALLS and not (mode == "exec" and func.id == "print"):
                    return False
            elif not (isinstance(func, ast.Attribute) and func.attr in _BOUNDED_METHODS):
                return False
            if any(k.arg is None for k in node.keywords):
                return False
    return True


def _run(code: types.CodeType, names: dict[str, Any], limits: _limits.Limits,
         builtins: dict[str, Any]) -> tuple[Any, dict[str, Any], Budget]:
    """Run `code` on a fresh namespace built from `names`; return its value, namespace and budget."""
    budget = Budget(limits)
    scope = dict(names)
    scope.update(GUARDS)  # after the data: data cannot replace a guard or __builtins__
    scope["__builtins__"] = builtins
    scope["_step_"], scope["_getiter_"] = budget.step, budget.iterate
    scope["_print_"] = lambda *_: budget.output
    previous, guards.current.budget = getattr(guards.current, "budget", None), budget
    try:
        value = eval(code, scope)  # restricted code in a guarded scope
    except SandboxViolation as exc:
        exc.lineno = exc.lineno or _sandbox_line(exc)
        raise
    except NameError as exc:
        if exc.name not in _UNAVAILABLE:
            raise
        raise SandboxViolation(f'"{exc.name}" is not available {WHERE}', _sandbox_line(exc)) from None
    finally:
        guards.current.budget = previous
    if budget.left < 0:  # the script caught ScriptTimeout itself and carried on
        raise step_timeout(budget.limit)
    budget.check_time()
    return value, scope, budget


def _sandbox_line(exc: BaseException) -> int | None:
    """Return the line of the innermost sandboxed frame in the traceback of `exc`."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _effective(max_steps: int | None) -> _limits.Limits:
    configured = _limits.current()
    if max_steps is None or max_steps == configured.steps:
        return configured
    return _limits.Limits(steps=max_steps, timeout=configured.timeout, max_bytes=configured.max_bytes,
                          memory=configured.memory, output=configured.output)


# --- the public entry points -----------------------------------------------------------------------

@dataclass
class ScriptRun:
    """What a script did: variables it created or changed, variables it deleted, what it printed.

    `unstorable` names variables left holding a function, class or module (other than helper
    functions the script defined with `def`), with the kind of value: never case data.
    """

    changed: dict[str, Any] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    output: str = ""
    unstorable: dict[str, str] = field(default_factory=dict)


def evaluate(source: str, names: dict[str, Any], *, max_steps: int | None = None,
             clock: Callable[[], datetime] | None = None) -> Any:
    """Evaluate one expression with `names` as its variables and return its value.

    `names` is never changed. The limits are the configured ones (`engine.limits.configure`);
    `max_steps` overrides the step budget.
    Raises: SandboxViolation (refused, or a limit broken: `limit` names it), ScriptTimeout (steps
    or time used up); errors of the expression itself (NameError, ZeroDivisionError, ...) pass
    through unchanged.
    """
    code = _code(source, "eval")
    limits = _effective(max_steps)
    if _is_bounded(source):
        return _run(code, names, limits, builtins_for(clock))[0]
    return _isolated(("eval", source, names, limits, (clock or default_now)()))


def run_script(source: str, names: dict[str, Any], *, max_steps: int | None = None,
               clock: Callable[[], datetime] | None = None) -> ScriptRun:
    """Run a script on a copy of `names` in an evaluator process; return what it changed.

    Raises: as `evaluate`.
    """
    code = _code(source, "exec")
    limits = _effective(max_steps)
    if _is_bounded(source, "exec"):
        return _script_run(code, names, limits, builtins_for(clock))
    return _isolated(("exec", source, names, _effective(max_steps), (clock or default_now)()))  # type: ignore[no-any-return]


def execute(source: str, names: dict[str, Any], *, max_steps: int | None = None,
            clock: Callable[[], datetime] | None = None) -> dict[str, Any]:
    """Run a script on a copy of `names`; return every variable it leaves behind.

    The result holds the input variables (changed or not) and new ones, without names starting
    with "_", functions, classes or modules; deleted variables are left out. `names` itself is
    never changed.
    Raises: as `evaluate`.
    """
    run = run_script(source, names, max_steps=max_steps, clock=clock)
    kept = {k: v for k, v in names.items() if k not in run.deleted and _returnable(k, v)}
    return kept | run.changed


def _returnable(name: str, value: Any) -> bool:
    return not (name.startswith("_") or callable(value) or isinstance(value, types.ModuleType))


# --- the evaluator process side ----------------------------------------------------------------

def _isolated(request: tuple[Any, ...]) -> Any:
    """Send a request to an evaluator process and turn its reply back into a value or exception."""
    limits: _limits.Limits = request[3]
    request = (*request[:2], _portable_names(request[2]), *request[3:])
    try:
        reply = _limits.run_isolated(request, limits)
    except _limits.Breach as breach:
        if breach.timed_out:
            raise overtime(limits.timeout) from None
        raise SandboxViolation(f"stopped: it used more than the memory limit of {limits.memory // 2**20:,} MB",
                               limit="memory") from None
    status, payload, lineno = reply
    if status == "ok":
        return payload
    if isinstance(payload, SandboxViolation):
        raise payload
    _raise_at_line(payload, lineno)


def _portable_names(names: dict[str, Any]) -> dict[str, Any]:
    """Return `names` without what restricted code cannot reach and with stand-ins for what cannot be sent."""
    portable = {k: v for k, v in names.items() if not k.startswith("_")}
    try:
        pickle.dumps(portable, protocol=pickle.HIGHEST_PROTOCOL)
        return portable
    except Exception:  # noqa: BLE001, S110 - any value that cannot be sent is replaced, one by one
        pass
    for name, value in portable.items():
        try:
            pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001
            portable[name] = Unavailable("module" if isinstance(value, types.ModuleType) else kind_of(value))
    return portable


def _raise_at_line(exc: BaseException, lineno: int | None) -> None:
    """Raise `exc` from a frame of the sandboxed file at `lineno`, so callers can read the line."""
    if not lineno:
        raise exc
    stub = compile("\n" * (lineno - 1) + "raise _exc_", FILENAME, "exec")
    exec(stub, {"_exc_": exc, "__builtins__": {}})  # noqa: S102 - our own one-line stub


def serve_request(request: tuple[Any, ...]) -> tuple[Any, ...]:
    """Evaluate one request in the evaluator process; return ("ok"|"error", value or exception, line).

    Whatever happens, the reply can be pickled; ("restart", reply) asks for a fresh process.
    """
    kind, source, names, limits, now = request
    builtins = {**SAFE_FUNCTIONS, "now": lambda: now}
    try:
        code = _code(source, kind)
        if kind == "eval":
            value = _run(code, names, limits, builtins)[0]
            return _sendable(("ok", value, None), "the value of the expression")
        return _sendable(("ok", _script_run(code, names, limits, builtins), None), "")
    except SandboxViolation as exc:
        return ("error", exc, exc.lineno)
    except MemoryError as exc:
        violation = SandboxViolation(f"stopped: it used more than the memory limit of "
                                     f"{limits.memory // 2**20:,} MB", _sandbox_line(exc), limit="memory")
        return ("restart", ("error", violation, violation.lineno))
    except RecursionError as exc:
        return ("error", SandboxViolation("stopped: calls or values are nested too deeply (the recursion "
                                          "limit)", _sandbox_line(exc), limit="recursion"), _sandbox_line(exc))
    except Exception as exc:  # noqa: BLE001 - an error of the script itself goes back to the caller
        return ("error", _portable_error(exc), _sandbox_line(exc))


def _script_run(code: types.CodeType, names: dict[str, Any], limits: _limits.Limits,
                builtins: dict[str, Any]) -> ScriptRun:
    _, scope, budget = _run(code, {k: _copy(v) for k, v in names.items()}, limits, builtins)
    run = ScriptRun(deleted=[k for k in names if k not in scope], output=budget.output.text())
    for name, value in scope.items():
        if name.startswith("_") or (name in names and value is names[name]):
            continue
        if not _returnable(name, value):
            if not _helper(name, value):
                run.unstorable[name] = "module" if isinstance(value, types.ModuleType) else kind_of(value)
            continue
        if name not in names or _differs(value, names[name]):
            run.changed[name] = value
    return run


def _helper(name: str, value: Any) -> bool:
    """Tell whether `value` is a function the script defined with `def name(...)`."""
    code = getattr(value, "__code__", None)
    return code is not None and code.co_filename == FILENAME and getattr(value, "__name__", None) == name


def _differs(new: Any, old: Any) -> bool:
    try:
        return bool(new is not old and (type(new) is not type(old) or new != old))
    except Exception:  # noqa: BLE001 - values that cannot be compared count as changed
        return True


def _sendable(reply: tuple[Any, ...], what: str) -> tuple[Any, ...]:
    """Return `reply` if it can be pickled; else an error naming the variable that cannot."""
    try:
        pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        return reply
    except Exception:  # noqa: BLE001, S110 - find the culprit below
        pass
    value = reply[1]
    culprits = value.changed.items() if isinstance(value, ScriptRun) else [(what, value)]
    for name, item in culprits:
        try:
            pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001
            label = name if isinstance(value, ScriptRun) else what
            message = (f"script result: {label} is a {kind_of(item)}; only text, numbers, true/false, null, "
                       "lists and objects can be stored" if isinstance(value, ScriptRun)
                       else f"{label} is a {kind_of(item)}, which cannot be used")
            return ("error", SandboxViolation(message, limit="data"), None)
    return ("error", SandboxViolation("the result cannot be passed back", limit="data"), None)


def _portable_error(exc: Exception) -> Exception:
    """Return an exception of the same kind that survives pickling (a string as its first argument)."""
    # SpiffWorkflow writes "Type:" + args[0] into its message: the first argument must be text
    args = tuple(str(a) if i == 0 and not isinstance(a, str) else a for i, a in enumerate(exc.args))
    try:
        if isinstance(exc, NameError):
            clone: Exception = NameError(*args, name=exc.name)
        else:
            clone = type(exc)(*args)
        pickle.loads(pickle.dumps(clone))
        return clone
    except Exception:  # noqa: BLE001 - an exception type we cannot rebuild becomes a plain error
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _copy(value: Any) -> Any:
    try:
        return copy.deepcopy(value)
    except (TypeError, copy.Error):  # an uncopyable object (a module, a lock) is passed as it is
        return value
