"""The evaluator process's side of the sandbox, called in this process: its replies, stated from the protocol.

`sandbox.serve_request` is what `python -m engine.limits` runs for every request: it takes
(kind, source, names, limits, now) and answers ("ok", value, None), ("error", exception, line) or
("restart", reply) when the process must be replaced. Every reply must survive pickling, and an
error must keep its kind and text. Calling it here runs the same code the child runs.
"""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime

import pytest

from engine import limits, sandbox
from engine.limits import Limits
from engine.sandbox import SandboxViolation, ScriptRun

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
LIMITS = Limits()


def serve(kind: str, source: str, names: dict | None = None, limits: Limits = LIMITS) -> tuple:
    reply = sandbox.serve_request((kind, source, names or {}, limits, NOW))
    pickle.dumps(reply)  # whatever it says, the reply can be sent back to the parent
    return reply


def error(reply: tuple) -> tuple[type, str, int | None]:
    """Return (kind of exception, its text, line) of an error reply."""
    status, exc, line = reply
    assert status == "error"
    return type(exc), str(exc.message if isinstance(exc, SandboxViolation) else exc), line


# --- replies that succeed ----------------------------------------------------------------------------

def test_an_expression_answers_ok_with_its_value():
    assert serve("eval", "x + 1", {"x": 41}) == ("ok", 42, None)


def test_the_expression_sees_the_requests_now_and_the_safe_functions():
    assert serve("eval", "now()") == ("ok", NOW, None)
    assert serve("eval", "len([1, 2, 3]) + max(4, 5)") == ("ok", 8, None)


def test_a_script_answers_ok_with_what_it_changed_deleted_and_printed():
    status, run, line = serve("exec", "y = x * 2\nprint('hi', y)\ndel z", {"x": 3, "z": 1})
    assert (status, line) == ("ok", None)
    assert run == ScriptRun(changed={"y": 6}, deleted=["z"], output="hi 6\n", unstorable={})


# --- refusals and broken limits ------------------------------------------------------------------------

def test_a_refused_source_is_an_error_reply_with_its_line():
    status, exc, line = serve("exec", "x = 1\nimport os")
    assert status == "error" and isinstance(exc, SandboxViolation)
    assert "imports are not allowed" in exc.message and line == exc.lineno == 2


def test_a_step_limit_is_an_error_reply_naming_the_limit_and_the_line():
    status, exc, line = serve("exec", "x = 0\nwhile True:\n    x = x + 1", limits=Limits(steps=50))
    assert status == "error" and exc.limit == "steps" and line == exc.lineno == 2  # the loop's line


def test_running_out_of_memory_asks_for_a_fresh_process():
    def grow():
        raise MemoryError

    status, reply = serve("exec", "x = 1\ny = grow()", {"grow": grow}, limits=Limits(memory=64 * 2**20))
    assert status == "restart"
    kind, text, line = error(reply)
    assert kind is SandboxViolation and reply[1].limit == "memory"
    assert text == "stopped: it used more than the memory limit of 64 MB"
    assert line == reply[1].lineno == 2


def test_memory_limit_message_groups_thousands():
    def grow():
        raise MemoryError

    _, reply = serve("eval", "grow()", {"grow": grow}, limits=Limits(memory=2048 * 2**20))
    assert reply[1].message == "stopped: it used more than the memory limit of 2,048 MB"


def test_too_deep_recursion_is_an_error_reply_naming_the_recursion_limit():
    source = "def down(n):\n    return down(n + 1)\nx = 1\ny = down(0)"
    kind, text, line = error(serve("exec", source))
    assert kind is SandboxViolation
    assert text == "stopped: calls or values are nested too deeply (the recursion limit)"
    reply = serve("exec", source)
    assert reply[1].limit == "recursion" and line == reply[1].lineno == 2


# --- errors of the code itself ----------------------------------------------------------------------------

def test_an_error_of_the_expression_keeps_its_kind_text_and_line():
    assert error(serve("exec", "a = 1\nb = a / 0")) == (ZeroDivisionError, "division by zero", 2)
    assert error(serve("eval", "1 / 0")) == (ZeroDivisionError, "division by zero", 1)


def test_a_name_error_keeps_the_missing_name():
    status, exc, line = serve("exec", "a = 1\nb = missing + 1")
    assert status == "error" and isinstance(exc, NameError)
    assert exc.name == "missing" and "missing" in str(exc) and line == 2


def test_an_error_whose_first_argument_is_not_text_gets_it_as_text():
    status, exc, _ = serve("exec", "d = {}\nv = d[5]")
    assert status == "error" and type(exc) is KeyError
    assert exc.args == ("5",)


def test_only_the_first_argument_of_an_error_is_turned_into_text():
    def fail():
        raise ValueError(7, 8)

    _, exc, _ = serve("eval", "fail()", {"fail": fail})
    assert type(exc) is ValueError and exc.args == ("7", 8)


def test_an_error_that_cannot_be_rebuilt_becomes_a_plain_error_naming_its_kind():
    class Odd(Exception):
        def __init__(self, text, extra):
            super().__init__(text)
            self.extra = extra

    def fail():
        raise Odd("went wrong", 1)

    assert error(serve("eval", "fail()", {"fail": fail})) == (RuntimeError, "Odd: went wrong", 1)


# --- results that cannot be sent back ------------------------------------------------------------------------

def test_an_expression_value_that_cannot_be_sent_is_a_data_error():
    status, exc, line = serve("eval", "(i for i in [1])")
    assert (status, line) == ("error", None) and isinstance(exc, SandboxViolation)
    assert exc.limit == "data"
    assert exc.message == "the value of the expression is a generator, which cannot be used"


def test_a_script_variable_that_cannot_be_sent_is_named_in_the_data_error():
    status, exc, line = serve("exec", "fine = 1\ngen = (i for i in [1])")
    assert (status, line) == ("error", None) and exc.limit == "data"
    assert exc.message == ("script result: gen is a generator; only text, numbers, true/false, null, lists and "
                           "objects can be stored")


# --- what a script reports as changed (the in-thread path runs the same comparison) -----------------------

def test_a_script_reports_only_variables_whose_value_changed():
    names = {"items": [1, 2], "count": 1000, "label": "x" * 30, "ratio": 1}
    run = sandbox.run_script("count = 1000\nlabel = 'x' * 30\nnew = 1", names)
    assert run.changed == {"new": 1}
    run = sandbox.run_script("items[0] = 5\nratio = 1.0", names)
    assert run.changed == {"items": [5, 2], "ratio": 1.0}
    assert names["items"] == [1, 2]


def test_a_value_that_cannot_be_compared_counts_as_changed():
    class Stubborn:
        def __eq__(self, other):
            raise ValueError("no comparing")

        __hash__ = object.__hash__

    run = sandbox.run_script("other = 1", {"odd": Stubborn()})
    assert list(run.changed) == ["odd", "other"]


# --- what the evaluator hands back, line by line -------------------------------------------------------------

def test_a_script_reports_helpers_apart_from_functions_it_leaves_in_variables():
    source = ("def helper(x):\n    return x\n"
              "renamed = helper\nshort = lambda: 1\nmod = m\ny = helper(2)")
    status, run, _ = serve("exec", source, {"m": pickle})
    assert status == "ok"
    assert run.unstorable == {"renamed": "function", "short": "function", "mod": "module"}
    assert run.changed == {"y": 2}


def test_a_nested_list_in_the_data_is_changed_in_the_copy_only():
    names = {"rows": [[1, 2]]}
    run = sandbox.run_script("rows[0][0] = 9", names)
    assert run.changed == {"rows": [[9, 2]]} and names == {"rows": [[1, 2]]}


def test_a_script_that_prints_in_this_thread_reports_it():
    assert sandbox.run_script("print('a', 1)\nx = 2", {}).output == "a 1\n"


def test_adding_to_a_list_keeps_its_identity_as_in_python():
    assert sandbox.execute("a = [1]\nb = a\na += [2]", {})["b"] == [1, 2]


def test_augmented_assignment_to_a_computed_item_is_refused():
    violation = pytest.raises(SandboxViolation, sandbox.check_script, "d = {}\nd[len(d)] += 1").value
    assert violation.lineno == 2


def test_a_script_may_use_exactly_its_step_budget():
    source = "for i in range(3):\n    x = i"
    assert serve("exec", source, limits=Limits(steps=3))[0] == "ok"
    assert serve("exec", source, limits=Limits(steps=2))[1].limit == "steps"


def test_every_loop_turn_and_every_call_is_a_step_even_one_that_returns_or_continues_at_once():
    calls = "def f():\n    return 1\na = f()\nb = f()\nc = f()\nd = f()"
    assert serve("exec", calls, limits=Limits(steps=4))[0] == "ok"
    assert serve("exec", calls, limits=Limits(steps=3))[1].limit == "steps"
    _, exc, _ = serve("exec", "n = 0\nwhile n < 10:\n    n = n + 1\n    continue", limits=Limits(steps=9))
    assert exc.limit == "steps"
    with pytest.raises(SandboxViolation) as caught:  # in the evaluator process: stopped at the time limit at worst
        sandbox.run_script("while True:\n    continue", {}, max_steps=50)
    assert caught.value.limit == "steps"


def test_a_size_violation_in_this_thread_names_its_line():
    _, exc, line = serve("exec", "x = 1\ny = s + s", {"s": "abcdef"}, limits=Limits(max_bytes=10))
    assert exc.limit == "size" and line == exc.lineno == 2


def test_a_refused_builtin_named_at_run_time_names_its_line():
    violation = pytest.raises(SandboxViolation, sandbox.run_script, "x = 1\ny = open", {}).value
    assert violation.message.startswith('"open" is not available') and violation.lineno == 2


def test_a_starred_set_display_is_size_checked_and_keeps_its_value():
    assert serve("exec", "x = {*a, *b}", {"a": {1, 2}, "b": {3}})[1].changed == {"x": {1, 2, 3}}
    status, exc, _ = serve("exec", "x = {*a, *b}", {"a": set(range(6)), "b": set(range(6, 12))},
                           limits=Limits(max_bytes=10))
    assert status == "error" and exc.limit == "size"


def test_the_size_budget_of_a_run_still_counts_after_a_nested_evaluation():
    def inner():
        return sandbox.evaluate("1 + 1", {})

    def source(additions: int) -> str:  # each builds 10 characters; a run may build 50 in all
        return "a = inner()\n" + "\n".join(f"b{n} = s + s" for n in range(additions))

    status, exc, _ = serve("exec", source(6), {"inner": inner, "s": "abcde"}, limits=Limits(max_bytes=10))
    assert status == "error" and exc.limit == "size" and "per run" in exc.message
    assert serve("exec", source(5), {"inner": inner, "s": "abcde"}, limits=Limits(max_bytes=10))[0] == "ok"


def test_an_error_from_the_evaluator_process_is_raised_at_the_scripts_line():
    with pytest.raises(ZeroDivisionError) as caught:
        sandbox.run_script("x = 1\nfor i in range(2):\n    y = 1 / 0", {})
    tb, lines = caught.value.__traceback__, []
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == sandbox.FILENAME:
            lines.append(tb.tb_lineno)
        tb = tb.tb_next
    assert lines[-1] == 3


def test_an_error_of_a_class_that_cannot_be_sent_becomes_a_plain_error():
    class Local(Exception):  # defined in a function: pickle cannot find it again
        pass

    def fail():
        raise Local("boom")

    assert error(serve("eval", "fail()", {"fail": fail})) == (RuntimeError, "Local: boom", 1)


def test_a_script_that_catches_the_step_limit_still_stops_naming_the_limit():
    source = "try:\n    while True:\n        pass\nexcept:\n    pass\nx = 1"
    _, exc, _ = serve("exec", source, limits=Limits(steps=50))
    assert exc.limit == "steps" and "50" in exc.message


def test_only_type_gets_the_isinstance_hint():
    assert str(pytest.raises(SandboxViolation, sandbox.check_expression, "open('x')").value) == (
        "open() is not available in process expressions (line 1)")
    assert str(pytest.raises(SandboxViolation, sandbox.check_expression, "type(x)").value) == (
        "type() is not available in process expressions; use isinstance(value, int) (line 1)")


def test_a_single_underscore_is_an_ordinary_name():
    assert sandbox.execute("total = 0\nfor _ in range(3):\n    total = total + 1", {}) == {"total": 3}


@pytest.mark.parametrize("name, text", [
    ("_y", 'the name "_y" is not allowed in process expressions (names starting with "_" are internal)'),
    ("printed", '"printed" is a reserved name'),
    ("a__roles__", '"a__roles__" is an invalid variable name because it ends with "__roles__"'),
])
def test_refused_variable_names_say_why_on_their_line(name, text):
    violation = pytest.raises(SandboxViolation, sandbox.check_script, f"x = 1\n{name} = 2").value
    assert (violation.message, violation.lineno) == (text, 2)


def test_a_step_override_applies_to_expressions_and_keeps_the_other_configured_limits():
    with pytest.raises(SandboxViolation) as caught:  # a generator: evaluated in the evaluator process
        sandbox.evaluate("sum(i for i in range(100))", {}, max_steps=10)
    assert caught.value.limit == "steps"
    saved = limits.current()
    try:
        limits.configure(None, max_bytes=10)
        with pytest.raises(SandboxViolation) as caught:
            sandbox.run_script("x = s + s", {"s": "abcdef"}, max_steps=500)
        assert caught.value.limit == "size"
    finally:
        limits.configure(None, **dataclasses.asdict(saved))
