"""The inbox's listing on PostgreSQL gives what the filter's ORM query gives (tests/engine/test_inbox_listing.py)."""

from __future__ import annotations

import pytest

from ..engine.test_inbox_listing import lists_as_the_filters_query_does

pytestmark = pytest.mark.postgres


def test_the_listing_gives_what_the_filters_query_gives_on_postgresql(sessions):
    lists_as_the_filters_query_does(sessions)
