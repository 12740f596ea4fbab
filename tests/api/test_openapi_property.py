"""Property-based run of the whole OpenAPI document with Schemathesis, in process against the WSGI app.

The limit of examples per operation keeps the run well under two minutes. Every operation gets generated requests, valid and invalid ones, (a bounded number, so the run stays short) with a token
holding every role, on a database with the shipped models, a case and a customer. Each response
must not be a server error and must match the document: status code, content type, headers, schema.
"""

from __future__ import annotations

import itertools

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from engine import customers, runtime, tokens, users
from engine.config import Settings
from webui import create_app

from .conftest import START

# the document's own promises; "schema-valid data must be accepted" is left out on purpose: a
# well-formed but unknown cursor (400) or a form value the process refuses (422) is a right answer
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
EXAMPLES = 10  # per operation and mode: about a minute on one core
EVERY_ROLE = ["expert", "supervisor", "designer", "auditor", "admin"]


@pytest.fixture
def api_schema(tmp_path, shipped, settings):
    fast = Settings(**{**settings.__dict__, "api_rate_per_minute": 1_000_000})
    app = create_app(fast, TESTING=True)
    with shipped.begin() as s:
        users.add_user(s, "api-all", "api-test-password", EVERY_ROLE, display_name="All roles")
        _row, secret = tokens.create_token(s, "api-all", by="test")
        runtime.start_instance(s, "customer_service", by="api-all", data=START, business_key=START["business_id"])
        runtime.start_instance(s, "registry_check", by="api-all", data={"business_id": START["business_id"]})
        customers.create_customer(s, {"business_id": START["business_id"], "name": START["company_name"]},
                                  by="api-all")
    app.config["POLKU_TEST_TOKEN"] = secret
    loaded = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    loaded.app = app
    return loaded


def test_every_operation_answers_within_its_document(api_schema):
    token = api_schema.app.config["POLKU_TEST_TOKEN"]
    headers = {"Authorization": f"Bearer {token}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 30

    for operation, mode in itertools.product(operations, (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)):
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            case.call_and_validate(headers=headers, checks=CHECKS)

        run()
