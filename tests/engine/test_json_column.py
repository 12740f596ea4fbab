"""JSON columns read by orjson give exactly what the standard decoder gives, whatever a row holds.

`engine.db._loads` reads every JSON column (variables, stashed forms, local task data). orjson reads
an integer beyond 64 bits as an inexact float and refuses NaN, infinities and lone surrogates; rows
written before whole numbers were 64-bit, or by hand, may hold any of these.
"""

from __future__ import annotations

import json
import math

import pytest
from sqlalchemy import select, text

from engine import db
from engine.db import utcnow
from engine.models import StashedForm

TEXTS = [
    '{"n": 123456789012345678901234567890}',  # beyond 64 bits: orjson would give 1.2345678901234568e+29
    '{"n": -9223372036854775809}',  # one below the 64-bit minimum
    '{"n": 9223372036854775807, "m": -9223372036854775808}',  # the bounds themselves
    '{"s": "1234567890123456789012", "x": 1}',  # 19 digits inside a text: read the slow way, same value
    '{"f": 0.1, "g": 1e-7, "h": 12345.678}',
    '{"t": "ääkköset \\u20ac \\ud83d\\ude00", "l": [1, [2, {"x": null}]], "b": true}',
    '{"s": "\\ud800"}',  # a lone surrogate: orjson refuses it
    '{"nan": NaN, "inf": Infinity}',  # what Python's encoder writes for them: orjson refuses it
    '{"big": 1e400}',  # an infinity written as a number
    '{"a": 1, "a": 2}',
]


def _same(a: object, b: object) -> bool:
    """Equal, type for type, with NaN equal to itself."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)  # type: ignore[attr-defined]
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    return a == b


@pytest.mark.parametrize("raw", TEXTS)
def test_loads_gives_what_the_standard_decoder_gives(raw):
    assert _same(db._loads(raw), json.loads(raw))
    assert _same(db._loads(raw.encode()), json.loads(raw))  # psycopg hands the loader bytes


def test_loads_refuses_what_is_not_json():
    with pytest.raises(ValueError):
        db._loads('{"a": ')


def test_rows_written_by_hand_read_back_exactly(sessions):
    with sessions.begin() as s:
        for n, raw in enumerate(TEXTS):
            s.execute(text("INSERT INTO stashed_form (token, owner_id, path, \"values\", expires_at) "
                           "VALUES (:t, 1, '/x', :v, :e)"),
                      {"t": f"tok{n}", "v": raw, "e": utcnow().replace(tzinfo=None)})
    with sessions() as s:
        read = {row.token: row.values for row in s.scalars(select(StashedForm))}
    for n, raw in enumerate(TEXTS):
        assert _same(read[f"tok{n}"], json.loads(raw)), raw
    assert read["tok0"]["n"] == 123456789012345678901234567890
