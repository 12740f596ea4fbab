"""The API blueprint, its SpecTree instance, bearer authentication and the per-token rate limit."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from flask import Blueprint, abort, current_app, g, request
from spectree import SecurityScheme, SecuritySchemeData, SpecTree

from engine import access, tokens

from ..auth import current_time
from ..db import get_session

bp = Blueprint("api", __name__, url_prefix="/api/v1")
PUBLIC = frozenset({"api.openapi", "api.docs", "api.docs_asset"})
ORIGIN_KEY = "audit_origin"


class ApiAuthError(Exception):
    """No usable bearer token: 401."""

    def __init__(self, detail: str):
        self.detail = detail
        super().__init__(detail)


class RateLimited(Exception):
    """Too many calls with one token: 429 with Retry-After."""

    def __init__(self, retry_after: int):
        self.retry_after = retry_after
        super().__init__(f"too many requests; retry after {retry_after} seconds")


def _before(req: Any, resp: Any, req_validation_error: Any, instance: Any, *_: Any) -> None:
    if req_validation_error is not None:
        from .problems import validation_problem

        abort(validation_problem(req_validation_error))


spec = SpecTree(
    "flask", mode="strict", title="Polku REST API", version="1", path="api/v1/_spectree",
    description="Process definitions, instances, tasks, messages, signals, incidents, external tasks, "
                "customers, KPIs and exports of Polku. Authenticate with a personal API token: "
                "`Authorization: Bearer polku_…`.",
    security_schemes=[SecurityScheme(name="bearer", data=SecuritySchemeData(type="http", scheme="bearer"))],
    security={"bearer": []}, before=_before, validation_error_status=422, annotations=True,
    naming_strategy=lambda model: model.__name__, nested_naming_strategy=lambda _parent, child: child,
)


def api(**kwargs: Any) -> Any:
    """Document and validate a view with SpecTree; its operationId is the view's name."""
    def decorate(func: Any) -> Any:
        return spec.validate(operation_id=func.__name__, **kwargs)(func)
    return decorate


class Window:
    """Calls per token in the last 60 seconds (memory of this server process; a sliding window)."""

    def __init__(self) -> None:
        self._calls: dict[int, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, token_id: int, limit: int, now: float) -> int:
        """Count a call; return 0 if allowed, else the seconds to wait."""
        with self._lock:
            calls = self._calls.setdefault(token_id, deque())
            while calls and calls[0] <= now - 60:
                calls.popleft()
            if len(calls) >= limit:
                return max(1, int(calls[0] + 60 - now) + 1)
            calls.append(now)
            return 0


def caller() -> tokens.Caller:
    """Return the authenticated caller of this API request."""
    found: tokens.Caller | None = g.get("api_caller")
    if found is None:  # every route passes _authenticate first
        raise ApiAuthError("authentication required")
    return found


def reader() -> access.Reader:
    """Return the caller as `engine.access` sees them."""
    who = caller()
    return access.Reader.of(who.username, who.roles)


def need(*roles: str) -> tokens.Caller:
    """Return the caller if their token holds one of `roles` (else 403)."""
    who = caller()
    tokens.require_role(who, *roles)
    return who


@bp.before_request
def _authenticate() -> None:
    if request.endpoint in PUBLIC:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiAuthError("send a personal API token: Authorization: Bearer <token>")
    session = get_session()
    found = tokens.authenticate(session, secret.strip(), now=current_time())
    if found is None:
        raise ApiAuthError("the token is unknown, revoked or expired")
    limit = current_app.extensions["polku"].settings.api_rate_per_minute
    window: Window = current_app.extensions.setdefault("polku_api_window", Window())
    wait = window.hit(found.token_id, limit, time.monotonic())
    if wait:
        raise RateLimited(wait)
    g.api_caller = found
    session.info[ORIGIN_KEY] = f"api token {found.token_id}"  # audit actor: "owner (api token N)"
