"""RFC 9457 problem details for everything under /api/: one table maps each error class to a stable type.

The `type` URIs are relative references (`/api/v1/problems/<name>`), stable across releases and
documented in docs/api.md. Form errors carry `errors` ({field: message}); model problems carry
`problems` ([{file, line, element, message}]).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response, current_app, request
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from engine import errors as engine_errors

from .. import errors as ui_errors
from .base import ApiAuthError, RateLimited

BASE = "/api/v1/problems/"
MEDIA = "application/problem+json"

# (class, status, type name, title): the first match wins, so subclasses come before their bases
TABLE: tuple[tuple[type[BaseException], int, str, str], ...] = (
    (ApiAuthError, 401, "unauthenticated", "Authentication required"),
    (RateLimited, 429, "rate-limited", "Too many requests"),
    (engine_errors.InvalidModel, 422, "invalid-model", "The model cannot be deployed"),
    (engine_errors.FormInvalid, 422, "form-invalid", "Some fields are not valid"),
    (engine_errors.DataInvalid, 422, "data-invalid", "The data is not acceptable"),
    (engine_errors.InvalidInput, 400, "invalid-input", "The request could not be handled"),
    (engine_errors.RevisionMismatch, 412, "revision-mismatch", "The instance has changed since you read it"),
    (engine_errors.ExternalTaskNotAvailable, 409, "external-task-not-available",
     "The external task is not available to this worker"),
    (engine_errors.TaskNotAvailable, 409, "task-not-available", "The task is not available"),
    (engine_errors.Conflict, 409, "conflict", "Someone else changed this first"),
    (StaleDataError, 409, "conflict", "Someone else changed this first"),
    (engine_errors.NotAllowed, 403, "forbidden", "Not allowed"),
    (engine_errors.NotFound, 404, "not-found", "Not found"),
    (engine_errors.ScriptError, 422, "script-error", "An expression or script failed"),
    (engine_errors.EngineError, 400, "engine-error", "The request could not be handled"),
)
HTTP_TYPES = {400: "bad-request", 401: "unauthenticated", 403: "forbidden", 404: "not-found",
              405: "method-not-allowed", 406: "not-acceptable", 409: "conflict", 412: "revision-mismatch",
              413: "too-large", 415: "unsupported-media-type", 422: "validation", 429: "rate-limited",
              500: "internal", 503: "unavailable"}


def problem(status: int, name: str, title: str, detail: str | None = None, **extra: Any) -> Response:
    """Return a problem+json response."""
    body: dict[str, Any] = {"type": BASE + name, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v is not None})
    response = Response(json.dumps(body, ensure_ascii=False, default=str), status=status, mimetype=MEDIA)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="polku"'
    return response


def for_exception(exc: BaseException) -> Response:
    """Return the problem response for an exception."""
    for cls, status, name, title in TABLE:
        if isinstance(exc, cls):
            extra: dict[str, Any] = {}
            if isinstance(exc, engine_errors.FormInvalid):
                extra["errors"] = exc.errors
            if isinstance(exc, engine_errors.InvalidModel):
                extra["problems"] = [p.as_dict() for p in exc.problems]
            detail = getattr(exc, "detail", None) if isinstance(exc, ApiAuthError) else str(exc) or None
            response = problem(status, name, title, detail, **extra)
            if isinstance(exc, RateLimited):
                response.headers["Retry-After"] = str(exc.retry_after)
            return response
    if isinstance(exc, HTTPException):
        if exc.response is not None and exc.response.mimetype == MEDIA:
            return exc.response  # a problem made by a view or the validation hook
        status = exc.code or 500
        return problem(status, HTTP_TYPES.get(status, "http-error"), exc.name,
                       exc.description if status < 500 else None)
    status = ui_errors.status_for(exc)
    if status == 503:
        response = problem(503, "unavailable", "The database is not available just now",
                           "Nothing was changed; try again in a moment.")
        response.headers["Retry-After"] = "5"
        return response
    current_app.logger.error("API error", exc_info=exc)
    return problem(500, "internal", "Internal server error")


def validation_problem(err: Any) -> Response:
    """Return the 422 problem for a request that breaks its pydantic model (field path -> message)."""
    fields: dict[str, str] = {}
    for item in err.errors():
        path = ".".join(str(p) for p in item.get("loc", ())) or "body"
        fields[path] = item.get("msg", "invalid")
    return problem(422, "validation", "The request does not match its schema",
                   "; ".join(f"{k}: {v}" for k, v in fields.items()), errors=fields)


def _under_api() -> bool:
    return request.path.startswith("/api/")


def _dispatch(fallback: Any) -> Any:
    def handle(exc: BaseException) -> Response:
        return for_exception(exc) if _under_api() else fallback(exc)
    return handle


def init_app(app: Flask) -> None:
    """Answer errors under /api/ with problems; leave the UI's error pages as they are elsewhere."""
    app.register_error_handler(ApiAuthError, for_exception)
    app.register_error_handler(RateLimited, for_exception)
    handlers = app.error_handler_spec[None]
    for exc_class in (engine_errors.EngineError, StaleDataError, HTTPException):
        previous = None
        for per_code in handlers.values():
            previous = previous or per_code.get(exc_class)
        app.register_error_handler(exc_class, _dispatch(previous or ui_errors.error_response))
