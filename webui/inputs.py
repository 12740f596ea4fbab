"""Input that cannot be read right is refused with 400 before any view (or the CSRF check) sees it.

- Invalid UTF-8 anywhere a client sends text: the query string, a URL-encoded form body (also
  percent-encoded bytes such as `%FF`), multipart field values and upload file names, a JSON
  body, and lone surrogates written as `\\udc80` escapes in JSON. Werkzeug would otherwise store a
  replacement character or a surrogate in the case data without a word.
- JSON nested deeper than Python's parser can follow (say 100,000 `[`): 400, not a 500.

The check runs first among the `before_request` functions, as it must read the raw body before
the form parser consumes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_to_bytes

from flask import Flask, Response, request
from flask_babel import gettext as _
from werkzeug.exceptions import BadRequest

from engine.values import whole_number

__all__ = ["REPLACEMENT", "init_app", "page_number", "refuse", "whole_number"]

REPLACEMENT = "\ufffd"  # what werkzeug's multipart parser makes of bytes that are not UTF-8


class InvalidText(BadRequest):
    """A client sent text that is not valid UTF-8 (or JSON nested beyond reading)."""


def refuse(message: str) -> None:
    """Answer 400 with a clear message."""
    raise InvalidText(description=message)


MAX_PAGE = 1_000_000


def page_number() -> int:
    """Return the page asked for by the query's `page` (1 when it is absent or not 1 to 1,000,000)."""
    number = whole_number(request.args.get("page", "").strip())
    return number if number is not None and 1 <= number <= MAX_PAGE else 1




def _check_urlencoded(raw: bytes, where: Callable[[], str]) -> None:
    """Refuse (with the message `where()`) percent-encoded bytes that do not decode as UTF-8.

    Decoded whole: the pairs' separators are ASCII, so the whole is UTF-8 exactly when every name
    and value is. The message is made only for a refusal (a translation lookup on every request
    cost more than the check).
    """
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        refuse(where())


def _check_strings(value: Any) -> None:
    """Refuse lone surrogates (`"\\udc80"` is valid JSON but not text), without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            texts = [item]
        elif isinstance(item, dict):
            texts = list(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            texts = []
            stack.extend(item)
        else:
            continue
        for text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                refuse(_("The JSON body is not valid UTF-8 text. Send it again as UTF-8."))


def _check_json() -> None:
    raw = request.get_data(cache=True)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        refuse(_("The JSON body is not valid UTF-8 text. Send it again as UTF-8."))
    try:
        parsed = request.get_json(silent=True)  # cached for the view
    except RecursionError:
        refuse(_("The JSON body is nested too deeply to be read."))
    _check_strings(parsed)


def _check_multipart() -> None:
    for name, value in request.form.items(multi=True):
        if REPLACEMENT in (name or "") or REPLACEMENT in (value or ""):  # a part without a value is None
            refuse(_("The form is not valid UTF-8 text. Send it again as UTF-8."))
    for name, upload in request.files.items(multi=True):
        if REPLACEMENT in name or REPLACEMENT in (upload.filename or ""):
            refuse(_("The file name is not valid UTF-8 text. Rename the file and send it again."))


def check_input() -> Response | None:
    """Refuse a request whose query string, form, upload names or JSON body cannot be read as text."""
    if request.query_string:
        _check_urlencoded(request.query_string,
                          lambda: _("The address is not valid UTF-8 text. Send it again as UTF-8."))
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    if request.mimetype == "application/x-www-form-urlencoded":
        _check_urlencoded(request.get_data(cache=True),
                          lambda: _("The form is not valid UTF-8 text. Send it again as UTF-8."))
    elif request.mimetype == "multipart/form-data":
        _check_multipart()
    elif request.is_json:
        _check_json()
    return None


def init_app(app: Flask) -> None:
    """Run `check_input` before every other `before_request` function (CSRF included)."""
    app.before_request_funcs.setdefault(None, []).insert(0, check_input)
