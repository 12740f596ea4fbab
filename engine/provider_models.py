"""Tables of the providers registry: training organisations, consultants and partners who deliver
purchased services, and the feedback the providers themselves give the office.

Registered with the other tables by `engine.models` (which imports this module at its end).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base, intpk, str40, str200, utcnow


class Provider(Base):
    """A service provider the office buys services from (R7: the process stays the office's)."""

    __tablename__ = "provider"
    id: Mapped[intpk]
    name: Mapped[str200] = mapped_column(index=True)
    business_id: Mapped[str] = mapped_column(String(9), unique=True)
    kind: Mapped[str40]  # training | consultant | partner
    contact_person: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(40))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ProviderFeedback(Base):
    """Feedback a provider gave the office (on the cooperation, the customers, the process)."""

    __tablename__ = "provider_feedback"
    id: Mapped[intpk]
    provider_id: Mapped[int] = mapped_column(ForeignKey("provider.id"), index=True)
    given_on: Mapped[date] = mapped_column(Date)
    text: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[str200]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
