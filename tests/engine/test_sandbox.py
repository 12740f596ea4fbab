"""The restricted evaluator: what it refuses, what it allows, its step budget and its clock."""

from __future__ import annotations

import builtins
import os
from datetime import UTC, date, datetime, timedelta

import pytest

from engine import sandbox
from engine.sandbox import (
    SAFE_FUNCTIONS,
    SandboxViolation,
    ScriptTimeout,
    check_expression,
    check_script,
    evaluate,
    execute,
)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def refusal(run, *args, **kwargs) -> SandboxViolation:
    """Run and return the SandboxViolation it must raise."""
    with pytest.raises(SandboxViolation) as caught:
        run(*args, **kwargs)
    return caught.value


# --- refused at compile time -------------------------------------------------------------------

@pytest.mark.parametrize("source, message", [
    ("__import__('os')", '"__import__" is not allowed'),
    ("open('/etc/passwd')", "open() is not available in process expressions"),
    ("eval('1 + 1')", "eval() is not available"),
    ("exec('x = 1')", "exec() is not available"),
    ("compile('1', 'f', 'eval')", "compile() is not available"),
    ("globals()", "globals() is not available"),
    ("locals()", "locals() is not available"),
    ("vars()", "vars() is not available"),
    ("getattr(x, '__class__')", "getattr() is not available"),
    ("setattr(x, 'real', 1)", "setattr() is not available"),
    ("type(x)", "use isinstance"),
    ("type(x)('a', (), {})", "type() is not available"),
    ("print(x)", "print() is not available"),
    ("().__class__.__bases__[0].__subclasses__()", "attributes starting with \"_\" are internal"),
    ("x.__dict__", '".__dict__" is not allowed'),
    ("now.__globals__", '".__globals__" is not allowed'),
    ("x._private", '"._private" is not allowed'),
    ("(i for i in [1]).gi_frame", '".gi_frame" is not allowed'),
    ("(i for i in [1]).gi_code", '".gi_code" is not allowed'),
    ("x.f_back", '".f_back" is not allowed'),
    ("x.f_globals", '".f_globals" is not allowed'),
    ("x.tb_frame", '".tb_frame" is not allowed'),
    ("'{0.__class__}'.format(x)", '".format()" is not allowed in process expressions; use an f-string'),
    ("str.format_map('{x}', {})", '".format_map()" is not allowed'),
    ("f'{x:>{width}}'", "computed format specifications are not allowed"),
    ("f'{x:>9999999999}'", "format widths above 1,000,000"),
    ("_getattr_", '"_getattr_" is not allowed'),
])
def test_expression_is_refused_before_it_runs(source, message):
    violation = refusal(check_expression, source)
    assert message in str(violation)
    assert violation.lineno == 1
    assert str(violation).endswith("(line 1)")
    assert message in str(refusal(evaluate, source, {"x": 1, "width": 5}))


@pytest.mark.parametrize("source, message", [
    ("import os", "imports are not allowed in process expressions"),
    ("from os import path", "imports are not allowed in process expressions"),
    ("import os.path as p", "imports are not allowed"),
    ("class Thing:\n    pass", "class definitions are not allowed"),
    ("def f():\n    return 1\ng = f.__globals__", '".__globals__" is not allowed'),
    ("def f():\n    yield 1\ng = f().gi_frame.f_back", "is not allowed"),
    ("try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    t = e.__traceback__.tb_frame", "is not allowed"),
    ("async def f():\n    pass", "AsyncFunctionDef statements are not allowed"),
    ("def __init__(self):\n    pass", '"__init__" is not allowed'),
])
def test_script_is_refused_before_it_runs(source, message):
    text = "x = 1\n" + source  # the refusal names the line of the script, not of the statement
    violation = refusal(check_script, text)
    assert message in str(violation)
    assert violation.lineno is not None and violation.lineno >= 2
    assert message in str(refusal(execute, text, {}))


def test_import_refusal_reads_as_the_designer_expects():
    expected = "imports are not allowed in process expressions (line 1)"
    assert str(refusal(check_script, "import os")) == expected


def test_syntax_error_is_a_violation_with_its_line():
    violation = refusal(check_script, "x = 1\nif x\n    y = 2")
    assert "syntax error" in str(violation)
    assert violation.lineno == 2


def test_statement_is_not_an_expression():
    assert "syntax error" in str(refusal(check_expression, "x = 1"))


def test_over_long_source_is_refused():
    assert "longer than" in str(refusal(check_expression, "1 + " * sandbox.MAX_SOURCE + "1"))


def test_valid_sources_pass_the_checks():
    check_expression("amount > 10 and status == 'ok'")
    check_script("total = 0\nfor item in items:\n    total += item['price']\n")


# --- refused while running ---------------------------------------------------------------------

def test_dangerous_builtin_is_refused_even_when_not_called():
    violation = refusal(execute, "x = 1\nf = open\nf('/etc/passwd')", {})
    assert '"open" is not available in process expressions' in str(violation)
    assert violation.lineno == 2


def test_module_passed_in_data_cannot_be_used():
    assert "modules are not available" in str(refusal(evaluate, "os.getcwd()", {"os": os}))


def test_module_passed_in_data_is_not_returned():
    assert "os" not in execute("x = 1", {"os": os})


def test_data_cannot_replace_builtins_or_guards():
    names = {"open": "a value", "__builtins__": builtins.__dict__, "_getattr_": getattr,
             "_write_": lambda ob: ob, "os": os}
    assert evaluate("open", names) == "a value"
    assert "open() is not available" in str(refusal(evaluate, "open('/etc/passwd')", names))
    assert "compile" in str(refusal(execute, "f = compile", names))
    assert "modules are not available" in str(refusal(evaluate, "os.getcwd()", names))
    assert "cannot be changed" in str(refusal(execute, "d = now()\nd.year = 1", names))


def test_only_lists_and_dicts_can_be_changed():
    assert "cannot be changed" in str(refusal(execute, "def f():\n    pass\nf.x = 1", {}))
    assert "cannot be changed" in str(refusal(execute, "t = (1, 2)\nt[0] = 5", {}))


@pytest.mark.parametrize("source", [
    "'a' * 10**10",
    "10**10 * 'a'",
    "[0] * 10**9",
    "2 ** 10**10",
    "10 ** 100000",
    "1 << 10**9",
    "range(10**12)",
    "sum(range(10**7))",
    "'x'.ljust(10**10)",
    "str.center('x', 10**10)",
    "('a' * 10**6).replace('', 'b' * 10**6)",
    "('a' * 10**6).join([''] * 12)",
    "'%999999999d' % 4",
    "'%*d' % (10**9, 4)",
])
def test_huge_allocation_is_refused(source):
    message = str(refusal(evaluate, source, {}))
    assert "too large" in message or "format widths above 1,000,000" in message


def test_doubling_a_string_in_a_loop_is_refused():
    violation = refusal(execute, "s = 'a' * 1000\nfor i in range(20):\n    s = s + s", {})
    assert "too large" in str(violation)
    assert violation.lineno == 3


def test_many_allocations_below_the_limit_do_not_add_up_without_bound():
    violation = refusal(execute, "rows = []\nfor i in range(1000):\n    rows.append('x' * 900_000)", {})
    assert "50,000,000 characters or items were built" in str(violation)
    assert violation.lineno == 3


def test_allocation_total_is_per_run():
    for _ in range(60):  # 60 runs of 1,000,000 each stay allowed
        assert len(evaluate("'x' * 1_000_000", {})) == 1_000_000


def test_augmented_multiplication_is_guarded():
    assert "too large" in str(refusal(execute, "s = 'ab'\ns *= 10**9", {}))


# --- the step budget ---------------------------------------------------------------------------

def test_endless_loop_stops_at_the_step_limit():
    with pytest.raises(ScriptTimeout) as caught:
        execute("x = 1\nwhile True:\n    pass", {}, max_steps=1000)
    assert "1,000 steps" in str(caught.value)
    assert caught.value.lineno == 2
    assert isinstance(caught.value, SandboxViolation)


def test_default_step_limit_is_named_in_the_message():
    with pytest.raises(ScriptTimeout, match="100,000 steps"):
        execute("while True:\n    pass", {})


@pytest.mark.parametrize("source", [
    "x = [i for i in range(10**6)]",
    "x = sum(1 for i in range(10**6))",
    "x = [a for a in range(1000) for b in range(1000)]",
    "def f(n):\n    return f(n - 1) + f(n - 1) if n else 1\nx = f(40)",
    "f = lambda n: f(n - 1) + f(n - 1) if n else 1\nx = f(40)",
    "x = max(range(10**6), key=lambda v: -v)",
    "def gen():\n    while True:\n        yield 1\nx = any(v > 1 for v in gen())",
])
def test_long_running_work_stops_at_the_step_limit(source):
    with pytest.raises(ScriptTimeout):
        execute(source, {}, max_steps=5000)


def test_catching_the_timeout_does_not_let_the_script_finish():
    source = "try:\n    while True:\n        pass\nexcept:\n    pass\nfinished = True"
    with pytest.raises(ScriptTimeout):
        execute(source, {}, max_steps=1000)


def test_expression_has_a_step_limit_too():
    with pytest.raises(ScriptTimeout):
        evaluate("[i for i in range(10**6)]", {}, max_steps=100)


def test_loop_within_the_budget_finishes():
    assert execute("n = 0\nwhile n < 400:\n    n += 1", {}, max_steps=1000) == {"n": 400}


# --- what works --------------------------------------------------------------------------------

DATA = {"amount": 12.5, "status": "ok", "name": "Aino Virtanen", "items": [3, 1, 2],
        "customer": {"kind": "company", "tags": ["vip"]}}


@pytest.mark.parametrize("source, expected", [
    ("amount > 10 and status == 'ok'", True),
    ("amount * 2 - 5 / 2 + 7 // 2 + 7 % 4", 28.5),
    ("2 ** 10", 1024),
    ("1 < amount <= 12.5", True),
    ("not (status != 'ok' or amount < 0)", True),
    ("'vip' in customer['tags']", True),
    ("'x' not in customer['tags']", True),
    ("name.lower().startswith('aino')", True),
    ("name.split()[1].upper()", "VIRTANEN"),
    ("name.replace('Aino', 'A.')", "A. Virtanen"),
    ("'-'.join(['a', 'b'])", "a-b"),
    ("f'{name} owes {amount:.2f} EUR'", "Aino Virtanen owes 12.50 EUR"),
    ("'%s: %5.1f' % (status, amount)", "ok:  12.5"),
    ("[1, 2][::-1] + [3]", [2, 1, 3]),
    ("{'a': 1, **{'b': 2}}", {"a": 1, "b": 2}),
    ("{1, 2} | {3}", {1, 2, 3}),
    ("(1, 2)[0]", 1),
    ("[i * 2 for i in items if i > 1]", [6, 4]),
    ("{k: v for k, v in customer.items() if k == 'kind'}", {"kind": "company"}),
    ("{i % 2 for i in items}", {0, 1}),
    ("name[0:4]", "Aino"),
    ("customer['kind'] if amount > 100 else 'small'", "small"),
    ("customer.get('missing', 'none')", "none"),
    ("len(items) + min(items) + max(items) + sum(items)", 13),
    ("any(i > 2 for i in items) and all(i > 0 for i in items)", True),
    ("sorted(items, key=lambda i: -i)", [3, 2, 1]),
    ("round(2.567, 2) + abs(-1)", 3.57),
    ("int('7') + float('0.5') + len(str(10)) + bool(1)", 10.5),
    ("list(enumerate(['a']))", [(0, "a")]),
    ("dict(zip(['a', 'b'], [1, 2]))", {"a": 1, "b": 2}),
    ("list(range(3)) + list(reversed(range(2)))", [0, 1, 2, 1, 0]),
    ("set([1, 1]) == {1} and tuple([1]) == (1,)", True),
    ("isinstance(amount, (int, float)) and isinstance(name, str) and not isinstance(items, dict)", True),
    ("(total := sum(items)) > 5", True),
    ("(lambda x: x + 1)(1)", 2),
])
def test_expression_features_work(source, expected):
    check_expression(source)
    assert evaluate(source, DATA) == expected


def test_required_helpers_are_whitelisted():
    required = {"len", "min", "max", "sum", "any", "all", "sorted", "round", "abs", "int", "float", "str",
                "bool", "list", "dict", "set", "tuple", "enumerate", "zip", "range", "isinstance",
                "datetime", "date", "timedelta", "timezone", "now", "isoformat"}
    assert required <= set(SAFE_FUNCTIONS)
    dangerous = {"open", "eval", "exec", "getattr", "type", "__import__", "compile", "vars", "globals"}
    assert not dangerous & set(SAFE_FUNCTIONS)


def test_script_features_work():
    source = """
def net(price, vat=0.24):
    return round(price / (1 + vat), 2)

total = 0
for item in order['lines']:
    if item['qty'] > 1:
        total += net(item['price']) * item['qty']
    else:
        total += net(item['price'])
order['total'] = total
order['count'] += 1
seen.append('checked')
pairs = [(k, v) for k, v in order.items() if k == 'count']
a, (b, c) = 1, (2, 3)
n = 0
while n < 3:
    n += 1
    if n == 2:
        continue
label = 'big' if total > 10 else 'small'
del a
"""
    data = {"order": {"lines": [{"price": 12.4, "qty": 2}, {"price": 6.2, "qty": 1}], "count": 0},
            "seen": []}
    result = execute(source, data)
    assert result["total"] == 25.0
    assert result["order"]["total"] == 25.0 and result["order"]["count"] == 1
    assert result["seen"] == ["checked"]
    assert result["pairs"] == [("count", 1)]
    assert (result["b"], result["c"], result["n"], result["label"]) == (2, 3, 3, "big")
    assert "a" not in result
    assert "net" not in result  # functions are never returned


def test_execute_returns_unchanged_and_new_variables_but_no_helpers():
    result = execute("y = x + 1\nf = lambda: 1\nk = len\nt = datetime", {"x": 1, "_hidden": 2})
    assert result == {"x": 1, "y": 2}


def test_execute_does_not_change_its_input():
    data = {"lst": [1], "d": {"k": 1}, "n": 1}
    execute("lst.append(2)\nd['k'] = 2\nn = 5\nnew = 1", data)
    assert data == {"lst": [1], "d": {"k": 1}, "n": 1}


def test_failed_script_leaves_its_input_unchanged():
    data = {"lst": [1]}
    with pytest.raises(ZeroDivisionError):
        execute("lst.append(2)\nx = 1 / 0", data)
    assert data == {"lst": [1]}


def test_expression_assignment_does_not_leak_into_the_data():
    data = {"x": 1}
    assert evaluate("(y := x + 1)", data) == 2
    assert data == {"x": 1}


def test_errors_of_the_expression_itself_pass_through():
    with pytest.raises(ZeroDivisionError):
        evaluate("1 / 0", {})
    with pytest.raises(NameError, match="missing"):
        evaluate("missing > 1", {})
    with pytest.raises(KeyError):
        evaluate("d['nope']", {"d": {}})


def test_data_may_use_the_names_of_refused_builtins():
    assert evaluate("type == 'company' and id == 3", {"type": "company", "id": 3})


# --- dates and the engine clock ----------------------------------------------------------------

def test_now_reads_the_injected_clock():
    assert evaluate("now()", {}, clock=lambda: T0) == T0
    assert execute("due = now() + timedelta(days=3)", {}, clock=lambda: T0) == {"due": T0 + timedelta(days=3)}


def test_clock_can_move_between_evaluations():
    clock = [T0]
    assert evaluate("now() > start", {"start": T0}, clock=lambda: clock[0]) is False
    clock[0] = T0 + timedelta(seconds=1)
    assert evaluate("now() > start", {"start": T0}, clock=lambda: clock[0]) is True


def test_default_now_is_the_aware_utc_wall_clock():
    before = datetime.now(UTC)
    value = evaluate("now()", {})
    assert before <= value <= datetime.now(UTC)
    assert value.tzinfo is not None and value.utcoffset() == timedelta(0)


def test_date_helpers_work_and_dates_stay_objects():
    source = """
start = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
due = start + timedelta(days=14, hours=2)
day = date(2026, 3, 2)
text = isoformat(due)
weekday = due.weekday()
late = now() > due
"""
    result = execute(source, {}, clock=lambda: T0)
    assert result["due"] == datetime(2026, 3, 16, 10, 0, tzinfo=UTC)
    assert isinstance(result["day"], date)
    assert result["text"] == "2026-03-16T10:00:00+00:00"
    assert (result["weekday"], result["late"]) == (0, False)


def test_timer_expressions_evaluate_to_dates_and_durations():
    assert evaluate("now() + timedelta(minutes=30)", {}, clock=lambda: T0) == T0 + timedelta(minutes=30)
    assert evaluate("datetime.fromisoformat(when) - now()", {"when": "2026-03-03T08:00:00+00:00"},
                    clock=lambda: T0) == timedelta(days=1)


# --- caching -----------------------------------------------------------------------------------

def test_compiled_code_is_cached():
    source = "amount > 10 and status == 'ok'  # cache probe"
    evaluate(source, DATA)
    hits = sandbox._compile.cache_info().hits
    for _ in range(3):
        evaluate(source, DATA)
    assert sandbox._compile.cache_info().hits == hits + 3


def test_cached_refusal_is_raised_again_as_a_fresh_exception():
    first = refusal(evaluate, "open('x')  # cached refusal", {})
    second = refusal(evaluate, "open('x')  # cached refusal", {})
    assert first is not second and str(first) == str(second)
