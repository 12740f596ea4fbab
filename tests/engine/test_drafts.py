"""Drafts: per designer, replaced on save, never someone else's."""

from __future__ import annotations

import pytest

from engine import drafts
from engine.errors import InvalidInput, NotFound


def test_saving_again_replaces_the_same_draft(sessions):
    with sessions.begin() as s:
        first = drafts.save_draft(s, "dora", "order.bpmn", "<a/>")
        second = drafts.save_draft(s, "dora", "order.bpmn", "<b/>")
        assert first.id == second.id
        assert [d.content for d in drafts.list_drafts(s, "dora")] == ["<b/>"]


def test_drafts_are_per_designer(sessions):
    with sessions.begin() as s:
        mine = drafts.save_draft(s, "dora", "order.bpmn", "<a/>")
        drafts.save_draft(s, "dave", "order.bpmn", "<b/>")
        assert [d.owner for d in drafts.list_drafts(s, "dora")] == ["dora"]
        with pytest.raises(NotFound):
            drafts.get_draft(s, "dave", mine.id)
        with pytest.raises(NotFound):
            drafts.delete_draft(s, "dave", mine.id)


def test_delete_discards_the_draft(sessions):
    with sessions.begin() as s:
        draft = drafts.save_draft(s, "dora", "rules.dmn", "<d/>")
        drafts.delete_draft(s, "dora", draft.id)
        assert drafts.list_drafts(s, "dora") == []


@pytest.mark.parametrize("name", ["order.txt", "../x", ".bpmn", ""])
def test_only_model_file_names_are_accepted(sessions, name):
    with pytest.raises(InvalidInput), sessions.begin() as s:
        drafts.save_draft(s, "dora", name, "<a/>")


def test_path_parts_are_dropped_from_the_name(sessions):
    with sessions.begin() as s:
        assert drafts.save_draft(s, "dora", "../../etc/order.bpmn", "<a/>").filename == "order.bpmn"
