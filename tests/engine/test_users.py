"""User accounts: hashing, authentication, roles, experts, demo users."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from engine import signin, users
from engine.errors import InvalidInput, UserNotFound
from engine.models import AuditEvent


def test_added_user_authenticates_with_its_password_only(session):
    users.add_user(session, "Aino", "salasana-123", ["expert"], display_name="Aino A")
    assert users.authenticate(session, "aino", "salasana-123").display_name == "Aino A"
    assert users.authenticate(session, "AINO ", "salasana-123") is not None
    assert users.authenticate(session, "aino", "wrong-password") is None
    assert users.authenticate(session, "nobody", "salasana-123") is None


@pytest.mark.product_hashing
def test_password_is_stored_as_a_scrypt_hash(session):
    """The product hashes with werkzeug's scrypt at its default cost (n=32768, r=8, p=1)."""
    user = users.add_user(session, "aino", "salasana-123", ["expert"])
    assert user.password_hash.startswith("scrypt:32768:8:1$")
    assert "salasana-123" not in user.password_hash
    assert users.authenticate(session, "aino", "salasana-123") is user
    users.set_password(session, "aino", "uusi-salasana-9")
    assert user.password_hash.startswith("scrypt:32768:8:1$")
    assert users.authenticate(session, "aino", "uusi-salasana-9") is user


def test_tests_hash_with_a_cheap_scrypt(session):
    """Every other test hashes with n=1024 (tests/conftest.py), so creating a test user costs little."""
    assert users.add_user(session, "aino", "salasana-123", ["expert"]).password_hash.startswith("scrypt:1024:8:1$")
    assert users.set_password(session, "aino", "uusi-salasana").password_hash.startswith("scrypt:1024:8:1$")


def test_inactive_user_cannot_authenticate(session):
    users.add_user(session, "aino", "salasana-123", ["expert"])
    users.set_profile(session, "aino", active=False)
    assert users.authenticate(session, "aino", "salasana-123") is None


@pytest.mark.parametrize("username", ["a", "with space", "ääkkönen", "x" * 81, "-dash-first", ""])
def test_malformed_username_is_refused(session, username):
    with pytest.raises(InvalidInput):
        users.add_user(session, username, "salasana-123", ["expert"])


def test_unknown_role_is_refused(session):
    with pytest.raises(InvalidInput):
        users.add_user(session, "aino", "salasana-123", ["expert", "superuser"])


def test_short_password_is_refused(session):
    with pytest.raises(InvalidInput):
        users.add_user(session, "aino", "short", ["expert"])


def test_taken_username_is_refused_whatever_its_case(session):
    users.add_user(session, "aino", "salasana-123", ["expert"])
    with pytest.raises(InvalidInput, match="already taken"):
        users.add_user(session, "AINO", "salasana-456", ["admin"])


def test_set_password_replaces_the_old_one(session):
    users.add_user(session, "aino", "salasana-123", ["expert"])
    users.set_password(session, "aino", "uusi-salasana")
    assert users.authenticate(session, "aino", "salasana-123") is None
    assert users.authenticate(session, "aino", "uusi-salasana") is not None


def test_set_roles_keeps_canonical_order_and_drops_duplicates(session):
    users.add_user(session, "aino", "salasana-123", ["expert"])
    user = users.set_roles(session, "aino", ["admin", "expert", "admin"])
    assert user.roles == "expert,admin"
    assert user.role_set == {"expert", "admin"}


def test_changing_a_missing_user_raises_user_not_found(session):
    with pytest.raises(UserNotFound):
        users.set_roles(session, "nobody", ["expert"])
    with pytest.raises(UserNotFound):
        users.get_user(session, "nobody")


def test_unknown_locale_is_refused_before_anything_changes(session):
    users.add_user(session, "aino", "salasana-123", ["expert"], display_name="Aino")
    with pytest.raises(InvalidInput):
        users.set_profile(session, "aino", display_name="Changed", locale="sv")
    assert users.get_user(session, "aino").display_name == "Aino"


def test_experts_lists_only_active_users_with_the_expert_role(session):
    users.add_user(session, "aino", "salasana-123", ["expert"])
    users.add_user(session, "eero", "salasana-123", ["expert", "supervisor"])
    users.add_user(session, "sanna", "salasana-123", ["supervisor"])
    users.add_user(session, "olli", "salasana-123", ["expert"])
    users.set_profile(session, "olli", active=False)
    assert [u.username for u in users.experts(session)] == ["aino", "eero"]


def test_list_users_is_sorted_by_username(session):
    for name in ("pekka", "aino", "mika"):
        users.add_user(session, name, "salasana-123", [])
    assert [u.username for u in users.list_users(session)] == ["aino", "mika", "pekka"]


def test_seed_demo_users_gives_every_role_a_working_login_once(session):
    created = users.seed_demo_users(session)
    assert {role for _, _, roles in created for role in roles} == set(users.ROLES)
    for username, password, _ in created:
        assert users.authenticate(session, username, password) is not None
    assert users.seed_demo_users(session) == []


def test_user_changes_are_audited_without_the_password(session):
    users.add_user(session, "aino", "salasana-123", ["expert"], by="admin")
    users.set_password(session, "aino", "uusi-salasana", by="admin")
    events = session.scalars(select(AuditEvent).where(AuditEvent.stream == "users")
                             .order_by(AuditEvent.seq)).all()
    assert [json.loads(e.data)["action"] for e in events] == ["created", "password_set"]
    assert all(e.actor == "admin" for e in events)
    assert not any("salasana" in e.data for e in events)


def test_display_names_maps_known_usernames(session):
    users.add_user(session, "aino", "salasana-123", ["expert"], display_name="Aino A")
    assert users.display_names(session, ["aino", "nobody", None]) == {"aino": "Aino A"}
    assert users.display_names(session, []) == {}


# Sign-in sessions end with a new password, changed roles, deactivation and an admin's order.

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
IDLE = timedelta(minutes=30)


def _signed_in(session, username="aino", roles=("expert",)):
    user = users.add_user(session, username, "salasana-123", roles)
    token = signin.start_session(session, user.id, now=NOW, lifetime=timedelta(hours=12))
    return user, token


def _why(session, token, now=NOW):
    return signin.why_not_live(signin.find_session(session, token), now=now, idle=IDLE)


@pytest.mark.parametrize("change, reason", [
    (lambda s: users.set_password(s, "aino", "uusi-salasana"), "password_changed"),
    (lambda s: users.set_roles(s, "aino", ["supervisor"]), "roles_changed"),
    (lambda s: users.set_profile(s, "aino", active=False), "deactivated"),
    (lambda s: users.end_sessions(s, "aino", by="admin"), "ended_by_admin"),
])
def test_account_changes_end_every_session_of_the_user(session, change, reason):
    _user, token = _signed_in(session)
    _other, other_token = _signed_in(session, "eero")
    assert _why(session, token) is None
    change(session)
    assert _why(session, token) == reason
    assert _why(session, other_token) is None
    row = signin.find_session(session, token)
    assert row.ended_at is not None and row.ended_reason == reason


def test_unchanged_roles_and_profile_keep_the_sessions(session):
    _user, token = _signed_in(session)
    users.set_roles(session, "aino", ["expert"])
    users.set_profile(session, "aino", display_name="Aino A", active=True)
    assert _why(session, token) is None


def test_ending_sessions_is_audited_with_how_many(session):
    _signed_in(session)
    assert users.end_sessions(session, "aino", by="admin", now=NOW) == 1
    assert users.end_sessions(session, "aino", by="admin", now=NOW) == 0
    session.flush()
    ended = [json.loads(e.data) for e in session.scalars(select(AuditEvent)) if "sessions_ended" in e.data]
    assert ended == [{"user": "aino", "action": "sessions_ended", "reason": "ended_by_admin", "sessions": 1}]


def test_session_ends_when_idle_or_past_its_absolute_lifetime(session):
    _user, token = _signed_in(session)
    row = signin.find_session(session, token)
    assert _why(session, token, NOW + timedelta(minutes=29)) is None
    assert _why(session, token, NOW + timedelta(minutes=31)) == "idle"
    for minutes in range(20, 12 * 60, 20):  # busy all day: used every 20 minutes
        assert _why(session, token, NOW + timedelta(minutes=minutes)) is None
        signin.touch_session(row, now=NOW + timedelta(minutes=minutes))
    assert _why(session, token, NOW + timedelta(hours=12)) == "expired"


def test_only_the_hash_of_the_token_is_stored(session):
    _user, token = _signed_in(session)
    row = signin.find_session(session, token)
    assert row.id != token and token not in row.id and len(row.id) == 64
    assert signin.find_session(session, row.id) is None
    assert signin.find_session(session, "") is None


def test_demo_users_are_marked_and_can_be_deactivated(session):
    users.seed_demo_users(session)
    users.add_user(session, "aino", "salasana-123", ["expert"])
    assert users.demo_accounts(session) == sorted(u for u, *_rest in users.DEMO_USERS)
    assert users.get_user(session, "aino").demo is False
    assert users.deactivate_demo_users(session, by="ops") == sorted(u for u, *_rest in users.DEMO_USERS)
    assert users.demo_accounts(session) == []
    assert users.authenticate(session, "admin", "admin-demo") is None


def test_migration_marks_demo_users_seeded_before_the_demo_flag(tmp_path):
    from alembic import command
    from sqlalchemy import text
    from werkzeug.security import generate_password_hash

    from engine.db import alembic_config, make_engine, make_sessions

    engine = make_engine(f"sqlite:///{tmp_path}/old.db")
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0005")
        for username, password in (("admin", "admin-demo"), ("esimies", "vaihdettu-salasana"), ("aino", "aino-demo")):
            conn.execute(text("INSERT INTO user_account (username, display_name, password_hash, roles, locale, "
                              "active, created_at) VALUES (:u, :u, :h, 'admin', 'fi', 1, '2026-01-01 00:00:00')"),
                         {"u": username, "h": generate_password_hash(password, method="scrypt")})
        command.upgrade(cfg, "head")
    with make_sessions(engine).begin() as s:
        assert users.demo_accounts(s) == ["admin"]  # a changed password or another name is not a demo login
    engine.dispose()
