"""The real predictor (uvicorn subprocess, real MLflow registry) as a drop-in for `mlflow models serve`
and for Open Inference Protocol v2 clients.

`/invocations` is driven by MLflow's own scoring client (`mlflow.pyfunc.scoring_server.client`,
which builds the request with `mlflow.utils.proto_json_utils.dump_input_data` and parses the answer
into `mlflow.deployments.PredictionsResponse`, as MLflow's deployment tooling does), and its answers
are compared with MLflow loading the same version itself (`mlflow.pyfunc.load_model`). The same
rows then go through /predict and /v2/models/<name>/infer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import pytest
import requests
from mlflow.pyfunc.scoring_server.client import ScoringServerClient

from mlstack.data import load_base_dataset
from mlstack.store import PredictionStore
from tests.support.pipeline import TrainedRegistry
from tests.support.services import ApiProcess, preserved_process_globals, run_api, served_version

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(trained_registry: TrainedRegistry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    workdir = tmp_path_factory.mktemp("protocols")
    config = trained_registry.config(**{"prediction_store.url": f"sqlite:///{workdir / 'log.db'}"})
    with run_api(config, workdir) as started:
        yield started


def test_mlflows_own_scoring_client_gets_what_mlflow_itself_predicts(
    api: ApiProcess, trained_registry: TrainedRegistry
) -> None:
    dataset = load_base_dataset(trained_registry.config().data)
    frame = dataset.features.sample(40, random_state=3).reset_index(drop=True)
    address = urlparse(api.url)
    client = ScoringServerClient(address.hostname, address.port)
    client.wait_server_ready(timeout=30)  # MLflow's readiness: GET /ping
    by_frame = client.invoke(frame)  # a DataFrame: {"dataframe_split": ...}
    by_array = client.invoke(frame.to_numpy())  # an ndarray: {"inputs": [[...], ...]} in column order
    version = served_version(api.url)
    with preserved_process_globals():
        mlflow.set_tracking_uri(trained_registry.tracking_uri)
        expected = mlflow.pyfunc.load_model(f"models:/{trained_registry.model_name}/{version}").predict(frame)
    np.testing.assert_array_equal(
        by_frame.get_predictions(predictions_format="ndarray"), np.asarray(expected)
    )
    np.testing.assert_array_equal(
        by_array.get_predictions(predictions_format="ndarray"), np.asarray(expected)
    )
    assert list(by_frame.get_predictions()[0]) == list(expected)  # the dataframe view MLflow users read

    # The same rows through /predict and Open Inference Protocol v2: the same labels and probabilities.
    instances = frame.to_dict("records")
    predicted = requests.post(f"{api.url}/predict", json={"instances": instances}, timeout=30).json()
    assert [p["label"] for p in predicted["predictions"]] == list(expected)
    body = {
        "parameters": {"content_type": "pd"},
        "inputs": [
            {"name": name, "shape": [len(frame)], "datatype": "FP64", "data": frame[name].tolist()}
            for name in frame.columns
        ],
    }
    inferred = requests.post(
        f"{api.url}/v2/models/{trained_registry.model_name}/infer", json=body, timeout=30
    )
    assert inferred.status_code == 200, inferred.text
    outputs = {o["name"]: o for o in inferred.json()["outputs"]}
    assert outputs["label"]["data"] == list(expected)
    classes = outputs["probabilities"]["parameters"]["class_names"]
    from_predict = [p["probabilities"][c] for p in predicted["predictions"] for c in classes]
    assert outputs["probabilities"]["data"] == pytest.approx(from_predict)

    # Every row of every protocol is in the prediction log (acknowledged means stored).
    store = PredictionStore(api.config.prediction_store_url)
    try:
        assert store.count_predictions() == 4 * len(frame)
    finally:
        store.dispose()


def test_mlflow_and_v2_health_answer_like_their_servers(
    api: ApiProcess, trained_registry: TrainedRegistry
) -> None:
    assert requests.get(f"{api.url}/ping", timeout=5).status_code == 200
    assert requests.get(f"{api.url}/health", timeout=5).status_code == 200
    assert requests.get(f"{api.url}/v2/health/live", timeout=5).json() == {"live": True}
    assert requests.get(f"{api.url}/v2/health/ready", timeout=5).json() == {"ready": True}
    name = trained_registry.model_name
    ready = requests.get(f"{api.url}/v2/models/{name}/ready", timeout=5)
    assert ready.json() == {"name": name, "ready": True}
    metadata = requests.get(f"{api.url}/v2/models/{name}", timeout=5).json()
    assert metadata["versions"] == [served_version(api.url)]
    assert metadata["platform"] in ("onnxruntime_onnx", "sklearn")
    missing = requests.get(f"{api.url}/v2/models/{name}-other/ready", timeout=5)
    assert missing.status_code == 404 and "not found" in missing.json()["error"]


def test_before_a_model_is_loaded_every_protocol_says_not_ready(
    tmp_path: Path, trained_registry: TrainedRegistry
) -> None:
    config = trained_registry.config(**{"project.registered_model": "never-registered"})
    with run_api(config, tmp_path / "api", wait_ready=False) as waiting:
        assert requests.get(f"{waiting.url}/ping", timeout=5).status_code == 503
        assert requests.get(f"{waiting.url}/v2/health/ready", timeout=5).status_code == 400
        assert requests.get(f"{waiting.url}/v2/models/never-registered/ready", timeout=5).status_code == 400
        invocations = requests.post(f"{waiting.url}/invocations", json={"instances": [[1.0]]}, timeout=5)
        assert (
            invocations.status_code == 503 and invocations.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
        )
        infer = requests.post(
            f"{waiting.url}/v2/models/never-registered/infer", json={"inputs": []}, timeout=5
        )
        assert infer.status_code == 503 and "no model loaded yet" in infer.json()["error"]
