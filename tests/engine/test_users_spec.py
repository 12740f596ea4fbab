"""User accounts (engine.users), stated from what the module promises.

Every change is one `user_changed` event in the `users` stream, by the caller (`system` when no one
is named), saying which user, what was done and the new values, never the password; a change of
password or roles and a deactivation end the user's live sessions, recorded with how many.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from engine import signin, users
from engine.errors import InvalidInput, UserNotFound
from engine.models import AuditEvent

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _events(session):
    session.flush()
    query = select(AuditEvent).where(AuditEvent.stream == "users").order_by(AuditEvent.id)
    return [(e.kind, e.actor, json.loads(e.data)) for e in session.scalars(query)]


def _live_session(session, user):
    signin.start_session(session, user.id, now=datetime.now(UTC), lifetime=timedelta(hours=1))
    session.flush()


def test_each_change_is_one_event_by_system_unless_someone_is_named(session):
    aino = users.add_user(session, "aino", "salasana-123", ["supervisor", "expert"])
    _live_session(session, aino)
    users.set_roles(session, "aino", ["expert"])
    _live_session(session, aino)
    users.set_password(session, "aino", "uusi-salasana")
    users.set_profile(session, "aino", display_name="  Aino A  ", locale="en")
    _live_session(session, aino)
    users.set_profile(session, "aino", active=False)
    assert _events(session) == [
        ("user_changed", "system", {"user": "aino", "action": "created", "roles": ["expert", "supervisor"]}),
        ("user_changed", "system", {"user": "aino", "action": "roles_set", "roles": ["expert"]}),
        ("user_changed", "system", {"user": "aino", "action": "sessions_ended", "reason": "roles_changed",
                                    "sessions": 1}),
        ("user_changed", "system", {"user": "aino", "action": "password_set"}),
        ("user_changed", "system", {"user": "aino", "action": "sessions_ended", "reason": "password_changed",
                                    "sessions": 1}),
        ("user_changed", "system", {"user": "aino", "action": "profile_set", "display_name": "Aino A",
                                    "locale": "en"}),
        ("user_changed", "system", {"user": "aino", "action": "profile_set", "active": False}),
        ("user_changed", "system", {"user": "aino", "action": "sessions_ended", "reason": "deactivated",
                                    "sessions": 1}),
    ]


def test_named_actors_are_recorded(session):
    aino = users.add_user(session, "aino", "salasana-123", ["expert"], by="pekka")
    _live_session(session, aino)
    users.set_roles(session, "aino", ["supervisor"], by="pekka")
    _live_session(session, aino)
    users.set_password(session, "aino", "uusi-salasana", by="pekka")
    users.set_profile(session, "aino", locale="en", by="pekka")
    _live_session(session, aino)
    assert users.end_sessions(session, "aino", by="pekka", now=NOW) == 1
    events = _events(session)
    assert {actor for _k, actor, _d in events} == {"pekka"}
    assert [d["reason"] for _k, _a, d in events if d["action"] == "sessions_ended"] == [
        "roles_changed", "password_changed", "ended_by_admin"]


def test_an_admins_end_of_sessions_is_by_system_unless_named_and_counts_live_ones(session):
    aino = users.add_user(session, "aino", "salasana-123", ["expert"])
    _live_session(session, aino)
    _live_session(session, aino)
    assert users.end_sessions(session, "aino") == 2
    assert _events(session)[-1] == ("user_changed", "system", {
        "user": "aino", "action": "sessions_ended", "reason": "ended_by_admin", "sessions": 2})
    with pytest.raises(UserNotFound):
        users.end_sessions(session, "nobody")


def test_no_sessions_no_event_and_unchanged_roles_end_none(session):
    users.add_user(session, "aino", "salasana-123", ["expert"])
    users.set_password(session, "aino", "uusi-salasana")
    users.set_profile(session, "aino", active=False)
    aino = users.get_user(session, "aino")
    users.set_profile(session, "aino", active=True)
    _live_session(session, aino)
    users.set_roles(session, "aino", [" expert ", "", "expert"])
    actions = [d["action"] for _k, _a, d in _events(session)]
    assert actions == ["created", "password_set", "profile_set", "profile_set", "roles_set"]
    assert signin.live_sessions(session, aino.id, now=datetime.now(UTC), idle=timedelta(minutes=30))


def test_a_profile_change_to_the_same_or_blank_values_changes_nothing(session):
    users.add_user(session, "aino", "salasana-123", ["expert"], display_name="Aino A", locale="fi")
    user = users.set_profile(session, "aino", display_name="   ", locale="fi", active=True)
    users.set_profile(session, "aino", display_name=" Aino A ")
    assert (user.display_name, user.locale, user.active) == ("Aino A", "fi", True)
    assert [d["action"] for _k, _a, d in _events(session)] == ["created"]
    users.set_profile(session, "aino", display_name="x" * 250)
    assert user.display_name == "x" * 200


def test_the_display_name_falls_back_to_the_username(session):
    assert users.add_user(session, "Aino", "salasana-123", ["expert"]).display_name == "aino"
    assert users.add_user(session, "eero", "salasana-123", ["expert"], display_name="  ").display_name == "eero"
    assert users.add_user(session, "olli", "salasana-123", ["expert"], display_name=" Olli ").display_name == "Olli"


@pytest.mark.parametrize("username, ok", [
    ("ab", True), ("a" * 80, True), ("a" * 81, False), ("a", False), ("a.b-c_d", True), ("9lives", True),
    (".dot", False), ("_under", False), ("a b", False), ("a@b", False),
])
def test_usernames_are_2_to_80_of_a_z_digits_dot_dash_underscore_starting_with_a_letter_or_digit(username, ok):
    if ok:
        assert users.normalize_username(f"  {username.upper()} ") == username
    else:
        with pytest.raises(InvalidInput, match=r"^A username is 2-80 characters: letters a-z, digits, dot, dash or "
                                               r"underscore\.$"):  # the UI translates this exact text
            users.normalize_username(username)


def test_roles_come_in_canonical_order_and_an_unknown_one_is_refused(session):
    assert users.normalize_roles(["admin", " auditor", "expert ", "", "  ", "designer", "supervisor"]) == list(
        users.ROLES)
    with pytest.raises(InvalidInput, match=r"^Unknown role\.$"):
        users.normalize_roles(["expert", "boss"])


def test_a_password_has_at_least_8_characters(session):
    with pytest.raises(InvalidInput, match=r"^A password has at least 8 characters\.$"):
        users.add_user(session, "aino", "1234567", ["expert"])
    assert users.add_user(session, "aino", "12345678", ["expert"]).username == "aino"
    with pytest.raises(InvalidInput, match=r"^A password has at least 8 characters\.$"):
        users.set_password(session, "aino", "")
    with pytest.raises(InvalidInput, match=r"^Unknown language\.$"):
        users.add_user(session, "eero", "12345678", ["expert"], locale="sv")
    with pytest.raises(InvalidInput, match=r"^This username is already taken\.$"):
        users.add_user(session, "AINO", "12345678", ["expert"])


def test_authentication_takes_the_name_in_any_case_and_nothing_for_a_missing_password(session):
    users.add_user(session, "aino", "salasana-123", ["expert"])
    assert users.authenticate(session, " AINO ", "salasana-123").username == "aino"
    assert users.authenticate(session, "aino", None) is None  # type: ignore[arg-type]
    assert users.authenticate(session, None, "salasana-123") is None  # type: ignore[arg-type]
    assert users.authenticate(session, "nobody", None) is None  # type: ignore[arg-type]
    users.add_user(session, "xxxx", "salasana-456", ["expert"])
    assert users.authenticate(session, None, "salasana-456") is None  # type: ignore[arg-type]  # no name, nobody


def test_a_missing_user_is_named_in_the_error(session):
    with pytest.raises(UserNotFound, match="No user 'Nobody'."):
        users.get_user(session, "Nobody")
    users.add_user(session, "aino", "salasana-123", ["expert"])
    assert users.get_user(session, " AINO ").username == "aino"
    with pytest.raises(UserNotFound):
        users.get_user(session, None)  # type: ignore[arg-type]


def test_experts_are_active_users_holding_the_expert_role_among_others(session):
    users.add_user(session, "aino", "salasana-123", ["supervisor", "expert"], display_name="A")
    users.add_user(session, "eero", "salasana-123", ["supervisor"], display_name="B")
    users.add_user(session, "olli", "salasana-123", ["expert"], display_name="C")
    users.set_profile(session, "olli", active=False)
    assert [u.username for u in users.experts(session)] == ["aino"]


def test_display_names_of_known_usernames_only(session):
    users.add_user(session, "aino", "salasana-123", ["expert"], display_name="Aino A")
    assert users.display_names(session, ["aino", None, "", "nobody"]) == {"aino": "Aino A"}
    assert users.display_names(session, [None, ""]) == {}
    assert users.display_names(session, []) == {}


def test_seeding_creates_the_missing_demo_users_by_seed_once(session):
    users.add_user(session, "admin", "oma-salasana", ["admin"])
    created = users.seed_demo_users(session)
    expected = [(u, p, list(r)) for u, p, r, _n in users.DEMO_USERS if u != "admin"]
    assert created == expected
    assert users.seed_demo_users(session) == []
    assert users.get_user(session, "admin").demo is False
    for username, password, roles in expected:
        user = users.authenticate(session, username, password)
        assert user is not None and user.demo is True and sorted(user.role_set) == sorted(roles)
    created_events = [(a, d["user"]) for _k, a, d in _events(session) if d["action"] == "created"]
    assert created_events == [("system", "admin")] + [("seed", u) for u, *_r in expected]
    assert users.get_user(session, "esimies").display_name == "Sanna Esimies"


def test_demo_accounts_are_the_active_demo_users_by_name_and_deactivation_is_by_system(session):
    users.seed_demo_users(session)
    users.set_profile(session, "expert2", active=False)
    assert users.demo_accounts(session) == sorted(u for u, *_r in users.DEMO_USERS if u != "expert2")
    names = users.deactivate_demo_users(session)
    assert names == sorted(u for u, *_r in users.DEMO_USERS if u != "expert2")
    deactivated = [(a, d["user"]) for _k, a, d in _events(session) if d.get("active") is False]
    assert deactivated[1:] == [("system", n) for n in names]
    assert users.demo_accounts(session) == []
