"""On PostgreSQL: JSON columns come to `engine.db._loads` as bytes, and read back what the standard decoder
reads (an integer beyond 64 bits stays exact; PostgreSQL's own `json` type refuses NaN and infinities)."""

from __future__ import annotations

import json

from sqlalchemy import select, text

from engine.db import utcnow
from engine.models import StashedForm

TEXTS = [
    '{"n": 123456789012345678901234567890}',
    '{"n": -9223372036854775809, "m": 9223372036854775807}',
    '{"s": "1234567890123456789012", "f": 0.1, "t": "ääkköset \\u20ac", "l": [1, [2, {"x": null}]]}',
]


def test_rows_written_by_hand_read_back_exactly_on_postgresql(sessions):
    with sessions.begin() as s:
        for n, raw in enumerate(TEXTS):
            s.execute(text("INSERT INTO stashed_form (token, owner_id, path, \"values\", expires_at) "
                           "VALUES (:t, 1, '/x', CAST(:v AS json), :e)"), {"t": f"json{n}", "v": raw, "e": utcnow()})
    with sessions() as s:
        read = {row.token: row.values for row in s.scalars(select(StashedForm).where(StashedForm.token.like("json%")))}
    assert [read[f"json{n}"] for n in range(len(TEXTS))] == [json.loads(raw) for raw in TEXTS]
    assert type(read["json0"]["n"]) is int and read["json0"]["n"] == 123456789012345678901234567890
