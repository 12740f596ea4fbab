"""API tokens (engine.tokens), stated from what the module promises, not from its code.

A token is made for an active user with that user's roles or fewer (at least one), for 1 to 366
days (90 by default); only its SHA-256 hash and its first 12 characters are kept, the secret is
returned once. It authenticates while it is not revoked, not expired and its owner is active;
what it may do is its roles intersected with the owner's roles now. Its last use is written at
most once a minute. Making and revoking are `user_changed` events on the `users` stream.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from engine import tokens, users
from engine.errors import InvalidInput, NotAllowed, NotFound, UserNotFound
from engine.models import ApiToken, AuditEvent

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def people(session):
    users.add_user(session, "aino", "salasana-123", ["expert", "supervisor"])
    users.add_user(session, "pekka", "salasana-456", ["auditor"])
    session.flush()
    return session


def _events(session):
    session.flush()
    query = select(AuditEvent).where(AuditEvent.stream == "users", AuditEvent.kind == "user_changed")
    return [(e.actor, json.loads(e.data)) for e in session.scalars(query.order_by(AuditEvent.id))
            if json.loads(e.data).get("action", "").startswith("api_token")]


def test_a_new_token_keeps_only_a_hash_and_a_prefix_and_is_audited(people):
    row, secret = tokens.create_token(people, "aino", by="admin", name="  Raportit  ", now=NOW)
    assert secret.startswith("polku_") and len(secret) == 6 + 43  # 32 random bytes, URL-safe base64
    assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert row.prefix == secret[:12]
    stored = people.scalar(select(ApiToken).where(ApiToken.id == row.id))
    assert secret not in (stored.token_hash, stored.prefix, stored.name, stored.roles)
    assert (row.name, row.roles, row.created_by, row.created_at) == ("Raportit", "expert,supervisor", "admin", NOW)
    assert row.expires_at == NOW + timedelta(days=90)
    assert row.revoked_at is None and row.last_used_at is None
    assert _events(people) == [("admin", {
        "user": "aino", "action": "api_token_created", "token": row.id, "name": "Raportit",
        "roles": "expert,supervisor", "expires_at": (NOW + timedelta(days=90)).isoformat()})]


def test_the_creation_is_audited_at_its_time_and_a_long_maker_is_cut(people):
    row, _ = tokens.create_token(people, "aino", by="b" * 250, now=NOW)
    assert row.created_by == "b" * 200
    [created] = people.scalars(select(AuditEvent).where(AuditEvent.stream == "users",
                                                         AuditEvent.data.contains("api_token_created"))).all()
    assert created.at == NOW


def test_each_token_has_its_own_secret(people):
    one = tokens.create_token(people, "aino", by="aino", now=NOW)[1]
    two = tokens.create_token(people, "aino", by="aino", now=NOW)[1]
    assert one != two


def test_an_empty_name_becomes_api_and_a_long_one_is_cut(people):
    assert tokens.create_token(people, "aino", by="aino", now=NOW)[0].name == "API"
    assert tokens.create_token(people, "aino", by="aino", name="   ", now=NOW)[0].name == "API"
    assert tokens.create_token(people, "aino", by="aino", name="x" * 250, now=NOW)[0].name == "x" * 200


def test_a_token_may_have_fewer_roles_than_its_owner(people):
    row, _ = tokens.create_token(people, "aino", by="aino", roles=[" supervisor ", ""], now=NOW)
    assert row.role_set == {"supervisor"}


@pytest.mark.parametrize("roles, phrase", [
    (["auditor"], "does not hold auditor$"),
    (["auditor", "admin", "expert"], "does not hold admin, auditor$"),
    (["expert", "wizard"], "^unknown roles: wizard$"),
    (["wizard", "elf"], "^unknown roles: elf, wizard$"),
    ([], "^a token needs at least one role$"),
    (["  "], "^a token needs at least one role$"),
])
def test_roles_beyond_the_owners_unknown_or_none_are_refused(people, roles, phrase):
    with pytest.raises(InvalidInput, match=phrase):
        tokens.create_token(people, "aino", by="aino", roles=roles, now=NOW)
    assert people.scalar(select(ApiToken)) is None and _events(people) == []


@pytest.mark.parametrize("days, ok", [(0, False), (1, True), (366, True), (367, False), (-5, False)])
def test_the_expiry_is_one_to_366_days(people, days, ok):
    if ok:
        row, _ = tokens.create_token(people, "aino", by="aino", expires_days=days, now=NOW)
        assert row.expires_at == NOW + timedelta(days=days)
    else:
        with pytest.raises(InvalidInput, match=f"1 to 366 days, not {days}"):
            tokens.create_token(people, "aino", by="aino", expires_days=days, now=NOW)


def test_no_token_for_an_unknown_or_inactive_user(people):
    with pytest.raises(UserNotFound):
        tokens.create_token(people, "nobody", by="admin", now=NOW)
    users.set_profile(people, "pekka", active=False)
    with pytest.raises(InvalidInput, match="pekka is not active"):
        tokens.create_token(people, "pekka", by="admin", now=NOW)


def test_the_secret_authenticates_with_the_roles_both_token_and_owner_hold(people):
    row, secret = tokens.create_token(people, "aino", by="aino", now=NOW)
    caller = tokens.authenticate(people, secret, now=NOW)
    assert caller == tokens.Caller(row.id, "aino", frozenset({"expert", "supervisor"}))
    users.set_roles(people, "aino", ["expert", "designer"])  # the owner loses supervisor, gains designer
    assert tokens.authenticate(people, secret, now=NOW).roles == frozenset({"expert"})


@pytest.mark.parametrize("mangle", [
    lambda s: s + "x",
    lambda s: s[:-1],
    lambda s: s.removeprefix("polku_"),
    lambda s: "other_" + s.removeprefix("polku_"),
    lambda s: "",
])
def test_a_wrong_secret_authenticates_no_one(people, mangle):
    _, secret = tokens.create_token(people, "aino", by="aino", now=NOW)
    assert tokens.authenticate(people, mangle(secret), now=NOW) is None


def test_a_secret_that_is_not_valid_text_authenticates_no_one(people):
    tokens.create_token(people, "aino", by="aino", now=NOW)
    assert tokens.authenticate(people, "polku_\ud800abc", now=NOW) is None  # a lone surrogate, from JSON


def test_an_overlong_secret_is_refused_before_any_lookup(people):
    row, _ = tokens.create_token(people, "aino", by="aino", now=NOW)
    long_secret = "polku_" + "a" * 195  # 201 characters
    row.token_hash = hashlib.sha256(long_secret.encode()).hexdigest()
    assert tokens.authenticate(people, long_secret, now=NOW) is None
    at_limit = "polku_" + "b" * 194  # 200 characters: looked up
    row.token_hash = hashlib.sha256(at_limit.encode()).hexdigest()
    assert tokens.authenticate(people, at_limit, now=NOW).username == "aino"


def test_a_token_works_until_the_instant_it_expires(people):
    row, secret = tokens.create_token(people, "aino", by="aino", expires_days=1, now=NOW)
    assert tokens.authenticate(people, secret, now=row.expires_at - timedelta(microseconds=1)) is not None
    assert tokens.authenticate(people, secret, now=row.expires_at) is None
    assert tokens.token_dict(row, now=row.expires_at - timedelta(microseconds=1))["state"] == "active"
    assert tokens.token_dict(row, now=row.expires_at)["state"] == "expired"


def test_a_revoked_token_or_an_inactive_owner_authenticates_no_one(people):
    row, secret = tokens.create_token(people, "pekka", by="pekka", now=NOW)
    users.set_profile(people, "pekka", active=False)
    assert tokens.authenticate(people, secret, now=NOW) is None
    users.set_profile(people, "pekka", active=True)
    assert tokens.authenticate(people, secret, now=NOW) is not None
    tokens.revoke_token(people, row.id, by="admin", now=NOW + timedelta(hours=1))
    assert tokens.authenticate(people, secret, now=NOW + timedelta(hours=1)) is None
    assert tokens.token_dict(row, now=NOW)["state"] == "revoked"


def test_the_last_use_is_written_at_most_once_a_minute(people):
    row, secret = tokens.create_token(people, "aino", by="aino", now=NOW)
    tokens.authenticate(people, secret, now=NOW)
    assert row.last_used_at == NOW
    tokens.authenticate(people, secret, now=NOW + timedelta(seconds=59))
    assert row.last_used_at == NOW
    tokens.authenticate(people, secret, now=NOW + timedelta(minutes=1))
    assert row.last_used_at == NOW + timedelta(minutes=1)


def test_revoking_is_audited_once_and_keeps_the_first_time(people):
    row, _ = tokens.create_token(people, "aino", by="aino", now=NOW)
    later = NOW + timedelta(days=2)
    assert tokens.revoke_token(people, row.id, by="admin", now=later) is row
    tokens.revoke_token(people, row.id, by="admin", now=later + timedelta(days=1))
    assert row.revoked_at == later
    revoked = people.scalars(select(AuditEvent).where(AuditEvent.stream == "users").order_by(AuditEvent.id)).all()[-1]
    assert revoked.at == later
    assert [e for e in _events(people) if e[1]["action"] == "api_token_revoked"] == [
        ("admin", {"user": "aino", "action": "api_token_revoked", "token": row.id})]


def test_an_owner_may_revoke_only_their_own_tokens(people):
    row, _ = tokens.create_token(people, "aino", by="aino", now=NOW)
    with pytest.raises(NotFound, match=f"no API token {row.id}"):
        tokens.revoke_token(people, row.id, by="pekka", owner="pekka", now=NOW)
    assert row.revoked_at is None
    assert tokens.revoke_token(people, row.id, by="aino", owner="aino", now=NOW).revoked_at == NOW
    with pytest.raises(NotFound):
        tokens.revoke_token(people, row.id + 1, by="admin", now=NOW)


def test_listing_is_newest_first_and_per_owner(people):
    first = tokens.create_token(people, "aino", by="aino", now=NOW)[0]
    other = tokens.create_token(people, "pekka", by="pekka", now=NOW)[0]
    second = tokens.create_token(people, "aino", by="aino", now=NOW)[0]
    assert [r.id for r in tokens.list_tokens(people)] == [second.id, other.id, first.id]
    assert [r.id for r in tokens.list_tokens(people, "aino")] == [second.id, first.id]
    assert tokens.owner_names(people, [first, other]) == {first.owner_id: "aino", other.owner_id: "pekka"}
    assert tokens.owner_names(people, []) == {}


def test_require_role_needs_one_of_the_roles(people):
    caller = tokens.Caller(1, "aino", frozenset({"expert"}))
    tokens.require_role(caller, "supervisor", "expert")
    with pytest.raises(NotAllowed, match="one of the roles supervisor, admin; the token has expert"):
        tokens.require_role(caller, "supervisor", "admin")
    with pytest.raises(NotAllowed, match="the token has auditor, expert$"):
        tokens.require_role(tokens.Caller(1, "aino", frozenset({"expert", "auditor"})), "admin")
    with pytest.raises(NotAllowed, match="the token has none"):
        tokens.require_role(tokens.Caller(1, "aino", frozenset()), "expert")


def test_the_token_as_data_never_holds_the_secret(people):
    row, secret = tokens.create_token(people, "aino", by="aino", name="CI", roles=["supervisor", "expert"], now=NOW)
    tokens.authenticate(people, secret, now=NOW + timedelta(minutes=5))
    data = tokens.token_dict(row, "aino", now=NOW)
    assert data == {"id": row.id, "name": "CI", "prefix": secret[:12], "owner": "aino",
                    "roles": ["expert", "supervisor"], "created_at": NOW.isoformat(), "created_by": "aino",
                    "expires_at": (NOW + timedelta(days=90)).isoformat(),
                    "last_used_at": (NOW + timedelta(minutes=5)).isoformat(), "state": "active"}
    assert secret not in json.dumps(data)
    assert tokens.token_dict(tokens.create_token(people, "aino", by="aino", now=NOW)[0], now=NOW)["last_used_at"] is None
