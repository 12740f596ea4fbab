"""Page: one page of query results with the total, shared by the inbox, customer and audit searches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Page:
    """One page of rows with the total count."""

    rows: list[Any]
    total: int
    page: int
    per_page: int

    @property
    def items(self) -> list[Any]:
        """Return the rows (the name the customer search uses)."""
        return self.rows

    @property
    def pages(self) -> int:
        """Return the number of pages (at least 1)."""
        return max(1, -(-self.total // self.per_page))
