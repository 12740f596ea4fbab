"""Gaps mutation testing found in engine/users.py: the experts' order, who deactivated the demo users."""

from __future__ import annotations

from sqlalchemy import select

from engine import users
from engine.models import AuditEvent


def test_experts_come_by_display_name_then_username(session):
    for username, name in (("cecilia", "Aalto Cecilia"), ("bert", "Virtanen Bert"), ("anna", "Virtanen Bert"),
                           ("dan", "Mäki Dan")):
        users.add_user(session, username, "salasana-123", ["expert"], display_name=name)
    assert [u.username for u in users.experts(session)] == ["cecilia", "dan", "anna", "bert"]


def test_deactivating_the_demo_users_is_audited_as_the_operator(session):
    users.seed_demo_users(session)
    names = users.deactivate_demo_users(session, by="ops")
    events = session.scalars(select(AuditEvent).where(AuditEvent.stream == users.AUDIT_STREAM,
                                                      AuditEvent.actor == "ops")).all()
    assert len(events) == len(names) > 0
    assert users.find_user(session, users.get_user(session, names[0]).id).username == names[0]
    assert users.find_user(session, 10_000) is None
