"""Fuzz every route of the OpenAPI document the server publishes (schemathesis): whatever
arrives, the answer is never a 5xx, errors are JSON, and the server keeps serving."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from tests.integration.serving.conftest import Served

pytestmark = pytest.mark.slow


def test_no_route_answers_5xx_to_generated_input(served: Served) -> None:
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    checked = 0
    for operation in operations:
        if operation.path in ("/v2/repository/models/{name}/unload",):
            continue  # would unload the models other checks need; covered by route tests

        @settings(max_examples=15, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=served.url, timeout=10)
            assert response.status_code < 500, (case.method, case.formatted_path,
                                                response.status_code, response.text[:300])
            if response.status_code >= 400:
                content_type = response.headers.get("content-type") or [""]
                assert str(content_type[0] if isinstance(content_type, list) else content_type
                           ).startswith("application/json")

        check()
        checked += 1
    assert checked >= 20
    assert httpx.get(f"{served.url}/v2/health/ready").status_code == 200
