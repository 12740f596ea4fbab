"""The audit trail's stored form, written out here and checked from outside the code.

docs/audit.md promises that an exported row can be re-hashed: the recipe is written in this file
(`_recipe`), not taken from `engine.audit`, so a change to what the hash covers, to the canonical
JSON of `data`, or to how empty fields enter it fails here even when `audit.verify` stays
consistent with itself. The same holds for what `audit.verify` reports (stream, event, place,
reason, counts) and for what an exported event holds (`audit.event_dict`).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select, text

from engine import audit, inbox, runtime
from engine.audit import ChainBreak
from engine.models import AuditEvent, AuditStream

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
GENESIS = "0" * 64


def _recipe(prev: str, row: AuditEvent) -> str:
    """SHA-256 (hex) of the fields joined by the unit separator U+001F, empty text for a missing value."""
    fields = [prev, row.stream, str(row.seq), row.kind, row.at.isoformat(timespec="microseconds"), row.actor,
              "" if row.instance_id is None else str(row.instance_id),
              "" if row.version_id is None else str(row.version_id),
              row.element_id or "", row.task_id or "", row.data]
    return hashlib.sha256("\u001f".join(fields).encode("utf-8")).hexdigest()


def _case(sessions, deploy) -> int:
    """One order case: started, its review completed (two transactions, the second from the cache)."""
    deploy("order.bpmn")
    with sessions.begin() as s:
        iid = runtime.start_instance(s, "order", by="anna", data={"customer": "Äänekosken Oy", "amount": 5},
                                     now=T0).id
    with sessions.begin() as s:
        [task] = inbox.tasks(s, instance_id=iid)
        runtime.complete_task(s, task.id, {"channel": "phone", "note": "ok"}, by="anna",
                              now=T0 + timedelta(hours=1))
    return iid


def _rows(s, stream: str) -> list[AuditEvent]:
    return list(s.scalars(select(AuditEvent).where(AuditEvent.stream == stream).order_by(AuditEvent.seq)))


def test_every_stored_hash_recomputes_from_the_written_recipe(sessions, deploy):
    iid = _case(sessions, deploy)
    with sessions.begin() as s:  # an event with no instance, version, element or task, and a non-ASCII payload
        audit.append(s, "user_changed", actor="admin", stream="users", data={"user": "pääkäyttäjä"}, at=T0)
        audit.append(s, "user_changed", actor="admin", stream="users", data={"user": "öljy"}, at=T0)
    with sessions.begin() as s:
        streams = {row.key: row for row in s.scalars(select(AuditStream))}
        assert {"models", "users", f"instance:{iid}"} <= set(streams)
        checked = 0
        for key, head in streams.items():
            prev = GENESIS
            rows = _rows(s, key)
            assert [r.seq for r in rows] == list(range(1, len(rows) + 1)), key
            for row in rows:
                assert row.prev_hash == prev, (key, row.seq)
                assert row.hash == _recipe(prev, row), (key, row.seq, row.kind)
                prev = row.hash
                checked += 1
            assert (head.seq, head.head) == (len(rows), prev), key  # the head holds the newest event
        assert checked > 6


def test_data_is_stored_as_canonical_json(sessions):
    """Sorted keys, no spaces, letters as they are (not \\u escapes), other values as their text."""
    with sessions.begin() as s:
        audit.append(s, "data_changed", actor="anna", stream="t", at=T0,
                     data={"b": "Äänekoski", "a": date(2026, 3, 2), "c": [1, {"y": 2, "x": None}]})
        audit.append(s, "data_changed", actor="anna", stream="t", at=T0,
                     data={"c": [1, {"x": None, "y": 2}], "a": date(2026, 3, 2), "b": "Äänekoski"})
        audit.append(s, "data_changed", actor="anna", stream="t", at=T0)
    with sessions.begin() as s:
        first, second, empty = _rows(s, "t")
        assert first.data == '{"a":"2026-03-02","b":"Äänekoski","c":[1,{"x":null,"y":2}]}'
        assert second.data == first.data  # the same data in another key order: the same text
        assert empty.data == "{}"


def test_event_dict_is_the_exported_form_of_an_event(sessions):
    with sessions.begin() as s:
        audit.append(s, "task_completed", actor="anna", instance_id=7, version_id=3, element_id="review",
                     task_id="t-1", data={"name": "Tarkista"}, at=T0)
    with sessions.begin() as s:
        [row] = audit.history(s, 7)
        assert audit.event_dict(row) == {
            "id": row.id, "seq": 1, "kind": "task_completed", "at": "2026-03-02T08:00:00+00:00", "actor": "anna",
            "instance_id": 7, "version_id": 3, "element_id": "review", "task_id": "t-1",
            "data": {"name": "Tarkista"}, "hash": row.hash}
        # data given by the caller (e.g. translated) replaces the stored payload in the export
        assert audit.event_dict(row, {"name": "Review"})["data"] == {"name": "Review"}


def _verification(sessions, instance_id=None):
    with sessions.begin() as s:
        return audit.verify(s, instance_id)


def _three(sessions, stream: str) -> list[AuditEvent]:
    with sessions.begin() as s:
        for n in range(3):
            audit.append(s, "data_changed", actor="anna", stream=stream, data={"n": n}, at=T0)
    with sessions.begin() as s:
        return _rows(s, stream)


def test_verify_counts_streams_and_events(sessions):
    _three(sessions, "a")
    _three(sessions, "b")
    with sessions.begin() as s:
        audit.append(s, "data_changed", actor="anna", instance_id=5, data={}, at=T0)
    assert _verification(sessions) == audit.Verification(streams=3, events=7, breaks=[])
    assert _verification(sessions, 5) == audit.Verification(streams=1, events=1, breaks=[])


def test_verify_names_stream_event_place_and_reason_of_each_kind_of_break(sessions):
    changed, missing, reordered = _three(sessions, "changed"), _three(sessions, "missing"), _three(sessions, "reordered")
    with sessions.begin() as s:
        s.execute(text("UPDATE audit_event SET actor = 'mallory' WHERE id = :id"), {"id": changed[1].id})
        s.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": missing[1].id})
        for seq, row in ((-1, reordered[1]), (2, reordered[2]), (3, reordered[1])):  # swap events 2 and 3
            s.execute(text("UPDATE audit_event SET seq = :seq WHERE id = :id"), {"seq": seq, "id": row.id})
    result = _verification(sessions)
    assert not result.ok
    assert result.breaks == [
        ChainBreak("changed", changed[1].id, 2, "its content was changed after it was written"),
        ChainBreak("missing", missing[2].id, 3, "event 2 is missing"),
        ChainBreak("reordered", reordered[2].id, 2, "it does not follow the previous event"),
    ]
    assert (result.streams, result.events) == (3, 2 + 2 + 2)  # events read up to and with the break


def test_verify_notices_a_head_that_does_not_match_its_newest_event(sessions):
    """Only the head's hash, or only its count, changed: either is reported as events cut off."""
    _three(sessions, "hash")
    _three(sessions, "count")
    with sessions.begin() as s:
        s.execute(text("UPDATE audit_stream SET head = :h WHERE key = 'hash'"), {"h": "f" * 64})
        s.execute(text("UPDATE audit_stream SET seq = 4 WHERE key = 'count'"))
    result = _verification(sessions)
    assert result.breaks == [
        ChainBreak("count", None, 4, "events after this one were removed"),
        ChainBreak("hash", None, 4, "events after this one were removed"),
    ]
    assert result.events == 6


def test_verify_lists_broken_streams_in_key_order(sessions):
    zulu, alfa = _three(sessions, "zulu"), _three(sessions, "alfa")  # written in the other order
    with sessions.begin() as s:
        for row in (zulu[0], alfa[0]):
            s.execute(text("UPDATE audit_event SET data = '{}' WHERE id = :id"), {"id": row.id})
    assert [b.stream for b in _verification(sessions).breaks] == ["alfa", "zulu"]


def test_iter_events_streams_the_chosen_instances_in_stream_order(sessions):
    with sessions.begin() as s:
        for iid in (12, 3, 12, 3, 4):
            audit.append(s, "data_changed", actor="anna", instance_id=iid, data={}, at=T0)
        audit.append(s, "deployed", actor="designer", data={}, at=T0)
        pending = [(e.stream, e.seq) for e in audit.iter_events(s, [3, 12])]  # buffered events are read too
    assert pending == [("instance:12", 1), ("instance:12", 2), ("instance:3", 1), ("instance:3", 2)]
    with sessions.begin() as s:
        assert [(e.stream, e.seq) for e in audit.iter_events(s)] == [
            ("instance:12", 1), ("instance:12", 2), ("instance:3", 1), ("instance:3", 2), ("instance:4", 1),
            ("models", 1)]
        assert list(audit.iter_events(s, [])) == []
        assert [e.instance_id for e in audit.iter_events(s, [4])] == [4]


def test_actions_on_a_cached_case_continue_its_chain(sessions, deploy):
    """Consecutive actions in one process (the case held between them) extend one unbroken chain."""
    iid = _case(sessions, deploy)
    with sessions.begin() as s:
        runtime.cancel_instance(s, iid, by="anna", reason="test", now=T0 + timedelta(hours=2))
    with sessions.begin() as s:
        rows = _rows(s, f"instance:{iid}")
        assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
        assert rows[-1].kind == "instance_cancelled"
        assert audit.verify(s, iid).ok


def test_a_self_declared_actor_is_recorded_with_its_origin_within_200_characters(sessions):
    """The CLI and the API mark their sessions with an origin: the event names it beside the actor."""
    with sessions.begin() as s:
        s.info["audit_origin"] = "cli, os user maija"
        audit.append(s, "data_changed", actor="anna", stream="t", data={}, at=T0)
        audit.append(s, "data_changed", actor="x" * 195, stream="t", data={}, at=T0)
        s.info.pop("audit_origin")
        audit.append(s, "data_changed", actor="anna", stream="t", data={}, at=T0)
    with sessions.begin() as s:
        actors = [r.actor for r in _rows(s, "t")]
    assert actors[0] == "anna (cli, os user maija)"
    assert actors[1] == ("x" * 195 + " (cli, os user maija)")[:200]
    assert len(actors[1]) == 200
    assert actors[2] == "anna"
    assert _verification(sessions).ok


def test_a_stream_written_twice_in_one_transaction_keeps_one_head(sessions):
    """Events written early (a read in the same transaction flushes them), then more: one chain, one head."""
    with sessions.begin() as s:
        audit.append(s, "data_changed", actor="anna", stream="first", data={}, at=T0)
        audit.history(s, 1)  # a read writes what is buffered: the new head "first" is stored
        audit.append(s, "data_changed", actor="anna", stream="second", data={}, at=T0)
        audit.append(s, "data_changed", actor="anna", stream="first", data={"n": 2}, at=T0)
    with sessions.begin() as s:  # the heads written above are where the next transaction goes on
        audit.append(s, "data_changed", actor="anna", stream="second", data={"n": 2}, at=T0)
        audit.append(s, "data_changed", actor="anna", stream="first", data={"n": 3}, at=T0)
    with sessions.begin() as s:
        heads = {h.key: h.seq for h in s.scalars(select(AuditStream))}
        assert heads == {"first": 3, "second": 2}
        assert [r.seq for r in _rows(s, "first")] == [1, 2, 3]
    assert _verification(sessions) == audit.Verification(streams=2, events=5, breaks=[])


def test_a_clean_head_before_a_changed_one_does_not_stop_the_write(sessions):
    """Heads are written for every stream that moved, whatever order the streams were touched in."""
    with sessions.begin() as s:
        audit.append(s, "data_changed", actor="anna", stream="a", data={}, at=T0)
    with sessions.begin() as s:
        audit.append(s, "data_changed", actor="anna", stream="a", data={}, at=T0)
        audit.history(s, 1)  # "a" is written and clean again
        audit.append(s, "data_changed", actor="anna", stream="b", data={}, at=T0)
    with sessions.begin() as s:
        audit.append(s, "data_changed", actor="anna", stream="b", data={}, at=T0)
    assert _verification(sessions) == audit.Verification(streams=2, events=4, breaks=[])
