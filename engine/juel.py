"""Camunda-style `${…}` expressions (the simple part of JUEL), read as Python for the sandbox.

Camunda Modeler writes conditions and templates as JUEL: `${approved}`, `${amount > 1000 &&
!rejected}`, `${customer.city eq 'Turku'}`. Polku evaluates every expression under
`engine.sandbox`, so a `${…}` text is translated here into one fully parenthesised Python
expression, which keeps JUEL's precedence (`!a == b` is `(not a) == b`, not Python's
`not (a == b)`). Text that is not a `${…}` template is returned unchanged: it is Python already.

Supported: literals (`true`, `false`, `null`, numbers, '…' and "…" strings), variable names,
`a.b` and `a['b']` (items of a map), `a[0]`, `( )`, `-`, `!`/`not`, `empty`, `*`, `/`/`div`,
`%`/`mod`, `+`, `-`, `<`/`lt`, `>`/`gt`, `<=`/`le`, `>=`/`ge`, `==`/`eq`, `!=`/`ne`,
`&&`/`and`, `||`/`or` and `a ? b : c`. Refused with `Unsupported` naming the part: method and
function calls (`execution.getVariable('x')`), deferred `#{…}` expressions, `instanceof`, text
around the `${…}`, and names Python cannot use. Values are not coerced as in Java: compare
numbers with numbers and text with text.

`engine.spiff` (conditions, timers, scripts' expressions) and `engine.runtime` (assignee and due
date templates) both call `translate`, and `engine.deploy` calls it to refuse what cannot run.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

__all__ = ["Unsupported", "is_template", "translate"]


class Unsupported(ValueError):
    """A `${…}` expression uses a part of JUEL that Polku does not run; the message names it."""


_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
  | (?P<op>&&|\|\||==|!=|<=|>=|[-+*/%<>!()\[\].?:,}])
""", re.VERBOSE)
_WORD_OPERATORS = {"and", "or", "not", "eq", "ne", "lt", "gt", "le", "ge", "div", "mod", "empty",
                   "instanceof", "true", "false", "null"}
_COMPARE = {"<": "<", "lt": "<", ">": ">", "gt": ">", "<=": "<=", "le": "<=", ">=": ">=", "ge": ">="}
_EQUALITY = {"==": "==", "eq": "==", "!=": "!=", "ne": "!="}
_MULTIPLY = {"*": "*", "/": "/", "div": "/", "%": "%", "mod": "%"}
_ESCAPES = {"\\'": "'", '\\"': '"', "\\\\": "\\"}


@dataclass(frozen=True)
class _Token:
    kind: str  # string, number, name, op, end
    text: str
    at: int


def is_template(text: str) -> bool:
    """Tell whether a condition or attribute value is written as a `${…}` (or `#{…}`) expression."""
    return text.strip().startswith(("${", "#{"))


@lru_cache(maxsize=4096)
def translate(text: str) -> str:
    """Return the Python expression for `text`: a `${…}` template is translated, other text kept.

    Raises:
        Unsupported: the template uses a part of JUEL that Polku does not run.
    """
    stripped = text.strip()
    if stripped.startswith("#{"):
        raise Unsupported(f"'{_short(stripped)}' is a deferred #{{…}} expression, which is not "
                          "supported: write ${…} with a variable name")
    if not stripped.startswith("${"):
        return stripped
    parser = _Parser(_tokens(stripped, 2), stripped)
    python = parser.expression()
    parser.expect("}", "a closing '}'")
    if parser.peek().kind != "end":
        raise Unsupported(f"text after the closing '}}' of '{_short(stripped)}' is not supported: "
                          "write the whole value as one ${…} expression")
    return python


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _tokens(text: str, start: int) -> list[_Token]:
    tokens = []
    pos = start
    while pos < len(text):
        found = _TOKEN.match(text, pos)
        if found is None:
            raise Unsupported(f"the character '{text[pos]}' in '{_short(text)}' cannot be read")
        kind = found.lastgroup or ""
        if kind != "space":
            tokens.append(_Token(kind, found.group(), pos))
            if found.group() == "}":  # the end of the ${…}; the caller refuses anything after it
                if text[found.end():].strip():
                    tokens.append(_Token("rest", text[found.end():], found.end()))
                break
        pos = found.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


class _Parser:
    """Recursive descent over JUEL's grammar, writing Python with explicit parentheses."""

    def __init__(self, tokens: list[_Token], source: str):
        self.tokens = tokens
        self.pos = 0
        self.source = source

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def take(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def accept(self, *texts: str) -> str | None:
        token = self.peek()
        if token.kind in ("op", "name") and token.text in texts:
            self.pos += 1
            return token.text
        return None

    def expect(self, text: str, what: str) -> None:
        if self.accept(text) is None:
            token = self.peek()
            if token.text == "instanceof":
                raise Unsupported(f"the operator 'instanceof' is not supported in '{_short(self.source)}'")
            found = f"'{token.text}'" if token.kind not in ("end", "rest") else "the end"
            raise Unsupported(f"'{_short(self.source)}' cannot be read: expected {what}, found {found}")

    def expression(self) -> str:
        condition = self.binary(0)
        if self.accept("?") is None:
            return condition
        then = self.expression()
        self.expect(":", "':' of the ? : operator")
        otherwise = self.expression()
        return f"({then} if {condition} else {otherwise})"

    _LEVELS: ClassVar[list[dict[str, str]]] = [
        {"||": "or", "or": "or"}, {"&&": "and", "and": "and"}, _EQUALITY, _COMPARE,
        {"+": "+", "-": "-"}, _MULTIPLY,
    ]

    def binary(self, level: int) -> str:
        if level == len(self._LEVELS):
            return self.unary()
        operators = self._LEVELS[level]
        left = self.binary(level + 1)
        while (op := self.accept(*operators)) is not None:
            right = self.binary(level + 1)
            left = f"({left} {operators[op]} {right})"
        return left

    def unary(self) -> str:
        if self.accept("-"):
            return f"(-{self.unary()})"
        if self.accept("!", "not"):
            return f"(not {self.unary()})"
        if self.accept("empty"):
            return f"({self.unary()} in (None, '', [], {{}}))"
        return self.value()

    def value(self) -> str:
        python = self.base()
        while True:
            if self.accept("."):
                token = self.take()
                if token.kind != "name":
                    raise Unsupported(f"'{_short(self.source)}' cannot be read: a name must follow '.'")
                self.refuse_call(f"{python}.{token.text}")
                python = f"{python}[{token.text!r}]"
            elif self.accept("["):
                index = self.expression()
                self.expect("]", "']'")
                python = f"{python}[{index}]"
            else:
                return python

    def is_function(self) -> bool:
        ahead = self.tokens[self.pos:self.pos + 3]
        return [t.text for t in ahead[::2]] == [":", "("] and len(ahead) == 3 and ahead[1].kind == "name"

    def refuse_call(self, shown: str) -> None:
        if self.peek().text == "(" and self.peek().kind == "op":
            name = shown.split("[")[0]
            raise Unsupported(f"'{name}(…)' is a method or function call, which is not supported in "
                              "${…} expressions: refer to process variables by name")

    def base(self) -> str:
        token = self.take()
        if token.kind == "string":
            return repr(_unescape(token.text))
        if token.kind == "number":
            return token.text
        if token.kind == "op" and token.text == "(":
            inner = self.expression()
            self.expect(")", "')'")
            return f"({inner})"
        if token.kind == "name":
            return self.name(token)
        found = f"'{token.text}'" if token.kind not in ("end", "rest") else "the end"
        raise Unsupported(f"'{_short(self.source)}' cannot be read: expected a value, found {found}")

    def name(self, token: _Token) -> str:
        literal = {"true": "True", "false": "False", "null": "None"}.get(token.text)
        if literal is not None:
            return literal
        if token.text in _WORD_OPERATORS:
            raise Unsupported(f"the operator '{token.text}' is not supported in '{_short(self.source)}'")
        if self.is_function():  # ns:function(…)
            raise Unsupported(f"'{token.text}:…' is a function call, which is not supported in ${{…}} "
                              "expressions")
        self.refuse_call(token.text)
        if token.text == "execution":
            raise Unsupported("'execution.…' uses Camunda's execution object, which does not exist in "
                              "Polku: refer to process variables by name (${amount}, not "
                              "${execution.getVariable('amount')})")
        if "$" in token.text or keyword.iskeyword(token.text) or token.text in ("True", "False", "None"):
            raise Unsupported(f"the name '{token.text}' cannot be used as a variable in ${{…}} expressions")
        return token.text


def _unescape(literal: str) -> str:
    body = literal[1:-1]
    return re.sub(r"\\.", lambda m: _ESCAPES.get(m.group(), m.group()), body)
