"""Page: one page of query results with the total, shared by the inbox, customer and audit searches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Page:
    """One page of rows with the total count.

    `more`: the count stopped at `total` (a search counts at most so many rows; see
    `history.search_instances`), so there are more rows and more pages than it says.
    """

    rows: list[Any]
    total: int
    page: int
    per_page: int
    more: bool = False

    @classmethod
    def of(cls, rows: list[Any], page: int, per_page: int) -> Page:
        """Return page `page` of rows held in memory (a page past the end: the last page)."""
        last = max(1, -(-len(rows) // per_page))
        page = min(max(1, page), last)
        return cls(rows[(page - 1) * per_page:page * per_page], len(rows), page, per_page)

    @property
    def items(self) -> list[Any]:
        """Return the rows (the name the customer search uses)."""
        return self.rows

    @property
    def pages(self) -> int:
        """Return the number of pages (at least 1)."""
        return max(1, -(-self.total // self.per_page))
