"""Schemathesis fuzzes the live predictor from its own OpenAPI document: no 5xx, responses conform.

The document describes /predict with the served model's feature schema, so generated bodies
exercise the real validation; schema-violating (negative) bodies must be rejected with a 4xx.
Operations are driven through `APIOperation.as_strategy` with Hypothesis directly: schemathesis'
pytest plugin (`from_fixture`) does not work with pytest 9.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.support.pipeline import TrainedRegistry
from tests.support.services import ApiProcess, run_api

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 40  # per operation and mode: bounded, the whole test runs in about a minute


@pytest.fixture(scope="module")
def fuzzed_api(
    trained_registry: TrainedRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    # A small batch limit keeps generated bodies small; the admin token is set so auth is enforced (401s).
    config = trained_registry.config(**{"api.max_batch": 20, "api.max_body_bytes": 65536})
    with run_api(config, tmp_path_factory.mktemp("fuzz-api"), admin_token="fuzz-token") as api:
        yield api


def fuzz_operation(operation: schemathesis.APIOperation, mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(timeout=10)

    run()


def test_api_conforms_to_its_openapi_document(fuzzed_api: ApiProcess) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed_api.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    labels = {operation.label for operation in operations}
    assert {"POST /predict", "POST /feedback", "POST /admin/reload", "GET /readyz"} <= labels, labels
    failures = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz_operation(operation, mode)
            except Unsatisfiable:
                # No body and no parameters: there is nothing a negative case could break.
                assert mode is GenerationMode.NEGATIVE, operation.label
            except Exception as exc:  # collect every operation's failure, then report them together
                failures.append(f"{operation.label} ({mode}): {exc}")
    assert not failures, "\n\n".join(failures)
    assert fuzzed_api.process.poll() is None, fuzzed_api.log_tail()
