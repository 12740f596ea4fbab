"""Argument types shared by the `polku` command modules (`engine.cli` and its `cli_*` parts)."""

from __future__ import annotations

import argparse

from .users import USERNAME_MAX


def person(text: str) -> str:
    """Return a --by or --to value: who acts, kept in columns as long as a user name (a usage error if longer)."""
    if len(text) > USERNAME_MAX:
        raise argparse.ArgumentTypeError(f"a user name has at most {USERNAME_MAX} characters, not {len(text):,}")
    return text
