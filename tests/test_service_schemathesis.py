"""Schema-driven fuzzing of the real server: no 5xx and every answer matches /openapi.json."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi import checks
from service_helpers import LiveServer, service_index  # noqa: F401 - fixture

# Checks on the answers. positive_data_acceptance is left out on purpose: a filter key is
# valid only if the index has it, which a static schema cannot say (unknown keys are a 422).
CHECKS = [
    schemathesis.checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 15


@pytest.fixture(scope="module")
def api_schema(service_index, text_encoder):  # noqa: F811
    app = service_index.app(text_encoder, admin_token="fuzz-token", max_k=20)
    with LiveServer(app) as live:
        yield schemathesis.openapi.from_url(f"{live.url}/openapi.json")


@pytest.mark.slow
def test_api_conforms_to_its_openapi_schema(api_schema):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert {
        "GET /search",
        "POST /search",
        "POST /search/by-example",
        "POST /admin/reload",
    } <= labels
    calls = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case):
            response = case.call_and_validate(checks=CHECKS, timeout=30)
            calls.append((case.operation.label, response.status_code))

        fuzz()
    assert len(calls) >= len(operations)
    print(f"\nschemathesis: {len(calls)} calls over {len(operations)} operations, no failures")
