"""The evaluator process's side of the sandbox, called in this process: its replies, stated from the protocol.

`sandbox.serve_request` is what `python -m engine.limits` runs for every request: it takes
(kind, source, names, limits, now) and answers ("ok", value, None), ("error", exception, line) or
("restart", reply) when the process must be replaced. Every reply must survive pickling, and an
error must keep its kind and text. Calling it here runs the same code the child runs.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

from engine import sandbox
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
