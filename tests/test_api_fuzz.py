"""Schemathesis fuzzes the live predictor from its own OpenAPI document: no 5xx, responses conform.

The document describes /predict with the served model's feature schema, so generated bodies
exercise the real validation; schema-violating bodies must be rejected with a 4xx.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.support.pipeline import TrainedRegistry
from tests.support.services import ApiProcess, run_api

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 40  # per operation: bounded, the whole module runs in well under a minute


@pytest.fixture(scope="module")
def fuzzed_api(
    trained_registry: TrainedRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    # A small batch limit keeps generated bodies small; the admin token is set so auth is enforced (401s).
    config = trained_registry.config(**{"api.max_batch": 20, "api.max_body_bytes": 65536})
    with run_api(config, tmp_path_factory.mktemp("fuzz-api"), admin_token="fuzz-token") as api:
        yield api


@pytest.fixture
def api_schema(fuzzed_api: ApiProcess) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzzed_api.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case) -> None:
    case.call_and_validate(timeout=10)
