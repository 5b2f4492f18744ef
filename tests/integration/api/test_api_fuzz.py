"""Schemathesis fuzzes the live predictor from its own OpenAPI document: no 5xx, responses conform.

The document describes /predict, /invocations (MLflow's formats, JSON and CSV) and the Open Inference
Protocol v2 routes with the served model's feature schema, so generated bodies exercise the real
validation; schema-violating (negative) bodies must be rejected with a 4xx.
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
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

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


# Formats with constraints JSON Schema cannot state: MLflow's columns must have equal lengths, a v2
# tensor's data must fill its shape, and both accept equivalent spellings the document cannot list
# (columns in any order, a [rows, features] tensor under any name). For them "schema-valid" and
# "accepted" differ both ways, so those two checks are off; every other check stays: never a 5xx,
# only documented status codes, and every answer (200 or error) in its documented shape.
FREE_FORM = ("/invocations", "/infer")


def fuzz_operation(operation: schemathesis.APIOperation, mode: GenerationMode) -> None:
    excluded = (
        [positive_data_acceptance, negative_data_rejection] if operation.path.endswith(FREE_FORM) else []
    )

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(timeout=10, excluded_checks=excluded)

    run()


def test_api_conforms_to_its_openapi_document(fuzzed_api: ApiProcess) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed_api.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    labels = {operation.label for operation in operations}
    expected = {
        "POST /predict",
        "POST /feedback",
        "POST /admin/reload",
        "GET /readyz",
        # The protocols users already speak: bad input must get a 4xx there too.
        "POST /invocations",
        "GET /ping",
        "POST /v2/models/{model_name}/infer",
        "POST /v2/models/{model_name}/versions/{model_version}/infer",
        "GET /v2/models/{model_name}",
        "GET /v2/health/ready",
    }
    assert expected <= labels, labels
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
