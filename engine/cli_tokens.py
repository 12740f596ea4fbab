"""`polku token create|list|revoke`: personal API tokens from the command line (see `engine.tokens`).

    polku token create USER [--expires-days N] [--roles r1,r2] [--name TEXT] [--by WHO]
    polku token list [USER]
    polku token revoke TOKEN_ID [--by WHO]

`create` prints the secret once (as `secret`); only its SHA-256 is stored.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from . import tokens
from .cli_args import person
from .config import Settings


def cmd_token(args: argparse.Namespace, sessions: Any, settings: Settings) -> Any:
    """Create, list or revoke personal API tokens."""
    with sessions.begin() as session:
        if args.token_command == "create":
            roles = [r for r in args.roles.split(",") if r.strip()] if args.roles else None
            row, secret = tokens.create_token(session, args.username, by=args.by, name=args.name or "",
                                              roles=roles, expires_days=args.expires_days)
            return {**tokens.token_dict(row, args.username), "secret": secret}
        if args.token_command == "list":
            rows = tokens.list_tokens(session, args.username)
            owners = tokens.owner_names(session, rows)
            return [tokens.token_dict(r, owners.get(r.owner_id)) for r in rows]
        row = tokens.revoke_token(session, args.token_id, by=args.by)
        return tokens.token_dict(row, tokens.owner_names(session, [row]).get(row.owner_id))


def add_parser(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `token` with its subcommands to the CLI (`add(name, func, help)` from `engine.cli`)."""
    p = add("token", cmd_token, "personal API tokens for the REST API: create, list, revoke")
    sub = p.add_subparsers(dest="token_command", required=True)
    q = sub.add_parser("create", help="make a token for a user; prints the secret once")
    q.add_argument("username")
    q.add_argument("--expires-days", type=int, default=tokens.DEFAULT_DAYS,
                   help=f"days until it expires (1-{tokens.MAX_DAYS}, default {tokens.DEFAULT_DAYS})")
    q.add_argument("--roles", help="comma-separated, a subset of the user's roles (default: all of them)")
    q.add_argument("--name", help="what the token is for, e.g. 'registry worker'")
    q.add_argument("--by", type=person, default="cli")
    q = sub.add_parser("list", help="list tokens (never their secrets)")
    q.add_argument("username", nargs="?")
    q = sub.add_parser("revoke", help="revoke a token at once")
    q.add_argument("token_id", type=int)
    q.add_argument("--by", type=person, default="cli")
