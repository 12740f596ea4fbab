"""The REST API at `/api/v1`: typed views (SpecTree + pydantic) calling `engine/` only.

- The OpenAPI 3.1 document is generated from the views' pydantic models: `/api/v1/openapi.json`;
  `/api/v1/docs` shows it with Swagger UI, served from npm's `swagger-ui-dist` (no CDN).
- Authentication: `Authorization: Bearer <personal API token>` (`engine.tokens`), nothing else.
  A session cookie does not authenticate here, so the blueprint is exempt from CSRF.
- Every error is RFC 9457 `application/problem+json` with a stable `type` per error class
  (`problems.py`); rate limiting per token (`ratelimit.py`).
Views are in `routes.py`; the token page of the UI is `webui/tokens.py`.
"""

from __future__ import annotations

from flask import Flask

from .. import tokens as token_page
from . import docs, problems, provider_routes, routes
from .base import bp, spec

__all__ = ["bp", "init_app", "spec"]


def init_app(app: Flask) -> None:
    """Register the API blueprint, exempt it from CSRF and answer errors under /api/ as problems."""
    routes.register()
    provider_routes.register()
    docs.register()
    app.register_blueprint(bp)
    app.register_blueprint(token_page.bp)  # /tokens: the UI page where users make and revoke their tokens
    csrf = app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(bp)
    problems.init_app(app)
