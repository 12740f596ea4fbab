"""The API's providers registry: list and read (every role that reads the registry), add and replace
(expert, supervisor, admin). Wrong fields are 422 with every field's message, as in the UI."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from engine import providers
from engine.provider_models import Provider

from ..db import get_session
from . import schemas as s
from .base import api, bp, need
from .routes import resp

READERS = ("expert", "supervisor", "auditor", "admin")
KEEPERS = ("expert", "supervisor", "admin")


class ProviderIn(s.Strict):
    name: str = Field(min_length=1, max_length=200)
    business_id: str = Field(min_length=1, max_length=20)
    kind: Literal["training", "consultant", "partner"]
    contact_person: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    active: bool = True


class ProviderOut(BaseModel):
    id: int
    name: str
    business_id: str
    kind: str
    contact_person: str | None = None
    email: str | None = None
    phone: str | None = None
    active: bool
    updated_at: str


class ProviderQuery(s.Strict):
    q: str = Field(default="", max_length=200)
    kind: Literal["training", "consultant", "partner"] | None = None
    active: bool = Field(default=False, description="only the providers in use")


class ProviderList(BaseModel):
    items: list[ProviderOut]


def _out(p: Provider) -> ProviderOut:
    return ProviderOut(id=p.id, name=p.name, business_id=p.business_id, kind=p.kind, contact_person=p.contact_person,
                       email=p.email, phone=p.phone, active=p.active, updated_at=p.updated_at.isoformat())


def _data(body: ProviderIn) -> dict[str, Any]:
    return {k: ("" if v is None else v) for k, v in body.model_dump().items()}


@bp.get("/providers")
@api(query=ProviderQuery, resp=resp("HTTP_200", ProviderList), tags=["providers"])
def list_providers(query: ProviderQuery) -> ProviderList:
    """The providers registry by name: search by name or business ID prefix, by kind, only those in use."""
    need(*READERS)
    rows = providers.list_providers(get_session(), query.q, kind=query.kind, active_only=query.active)
    return ProviderList(items=[_out(p) for p in rows])


@bp.post("/providers")
@api(json=ProviderIn, resp=resp("HTTP_201", ProviderOut), tags=["providers"])
def create_provider(json: ProviderIn) -> tuple[ProviderOut, int]:
    """Register a provider (422 with field errors; the business ID is checked like a customer's)."""
    who = need(*KEEPERS)
    return _out(providers.create_provider(get_session(), _data(json), by=who.username)), 201


@bp.get("/providers/<int(max=2147483647):provider_id>")
@api(resp=resp("HTTP_200", ProviderOut), tags=["providers"])
def get_provider(provider_id: int) -> ProviderOut:
    """One provider."""
    need(*READERS)
    return _out(providers.get_provider(get_session(), provider_id))


@bp.put("/providers/<int(max=2147483647):provider_id>")
@api(json=ProviderIn, resp=resp("HTTP_200", ProviderOut), tags=["providers"])
def update_provider(provider_id: int, json: ProviderIn) -> ProviderOut:
    """Replace a provider's details, its in-use flag included (422 with field errors)."""
    who = need(*KEEPERS)
    return _out(providers.update_provider(get_session(), provider_id, _data(json), by=who.username))


def register() -> None:
    """Nothing to do: importing this module adds the routes to the blueprint."""
