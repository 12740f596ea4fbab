"""Table of the national customer survey's results the supervisor records (engine.survey).

Registered with the other tables by `engine.models` (which imports this module at its end).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, String
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base, intpk, str200, utcnow


class SurveyResult(Base):
    """One period's result of the ministry's national, anonymous customer survey: the share of positive
    customer experiences (percent) and, when known, the number of answers. Not tied to any case."""

    __tablename__ = "survey_result"
    id: Mapped[intpk]
    period: Mapped[str] = mapped_column(String(10), unique=True)  # 2025, 2025-H1, 2025-Q3
    starts_on: Mapped[date] = mapped_column(Date, index=True)
    ends_on: Mapped[date] = mapped_column(Date)
    positive_percent: Mapped[float]
    answers: Mapped[int | None]
    note: Mapped[str | None] = mapped_column(String(200))
    recorded_by: Mapped[str200]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
