"""The predictor in-process: validation matrix, feedback, admin auth, metrics contract, OpenAPI, form.

The model is a real scikit-learn pipeline trained here and injected with `create_app(model=...)`, so
these tests need no MLflow server; everything behind the routes (prediction store on SQLite, log
writer thread, metrics registry) is real. Registry-backed behaviour is in
tests/integration/api/test_api_integration.py.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from mlstack_api.main import create_app
from mlstack_api.model import ServedModel, onnx_predict_proba, sklearn_predict_proba
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlstack.config import REPO_ROOT, Config
from mlstack.data import load_base_dataset, split
from mlstack.feature_types import infer_schema
from mlstack.store import PredictionStore
from tests.support.metrics import family_names, metric_total, parse_metrics
from tests.support.net import free_port, wait_until
from tests.support.pipeline import isolated_config
from tests.support.services import preserved_process_globals

TOKEN = "unit-test-admin-token"
FEEDBACK_TOKEN = "unit-test-feedback-token"
LABELLER = {"Authorization": f"Bearer {FEEDBACK_TOKEN}"}
MAX_BATCH = 5
MAX_BODY = 2048


@pytest.fixture(autouse=True)
def _isolate_mlflow_client() -> Iterator[None]:
    # In-process apps repoint MLflow's global client and the GIL interval; other tests must not inherit that.
    with preserved_process_globals():
        yield


@pytest.fixture(scope="module")
def served_model() -> ServedModel:
    """A real logistic-regression pipeline on the wine data, wrapped as the app serves models."""
    config = isolated_config("http://127.0.0.1:9", Path("/nonexistent"))
    dataset = load_base_dataset(config.data)
    parts = split(dataset, config)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(
        parts.x_train, parts.y_train
    )
    schema = infer_schema(parts.x_train, parts.y_train, dataset.class_names, dataset.target_name)
    return ServedModel(
        name="wine-classifier",
        version="7",
        alias="champion",
        run_id="run-unit",
        runtime="sklearn",
        schema=schema,
        predict_proba=sklearn_predict_proba(model, schema.feature_names),
        loaded_at=time.time(),
        load_seconds=0.01,
    )


def unit_config(tmp_path: Path, **overrides: Any) -> Config:
    # Nothing listens on the tracking URI's port: the watcher (when used) meets a real refused connection.
    return isolated_config(
        f"http://127.0.0.1:{free_port()}",
        tmp_path / "state",
        **{
            "api.max_batch": MAX_BATCH,
            "api.max_body_bytes": MAX_BODY,
            "api.reload_interval_s": 0.2,
            **overrides,
        },
    )


@pytest.fixture
def client(tmp_path: Path, served_model: ServedModel) -> Iterator[TestClient]:
    app = create_app(
        unit_config(tmp_path), model=served_model, admin_token=TOKEN, feedback_token=FEEDBACK_TOKEN
    )
    with TestClient(app) as test_client:
        yield test_client


def typical(model: ServedModel) -> dict[str, Any]:
    return model.schema.typical_instance()


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The total of the series of `name` whose labels include `labels`, in a /metrics body."""
    return metric_total(parse_metrics(text), name, **labels)


def test_predict_returns_class_probabilities_ids_and_model(
    client: TestClient, served_model: ServedModel
) -> None:
    rows = [typical(served_model), {**typical(served_model), "proline": 400.0}, typical(served_model)]
    response = client.post("/predict", json={"instances": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {
        "name": "wine-classifier",
        "version": "7",
        "alias": "champion",
        "run_id": "run-unit",
        "runtime": "sklearn",
    }
    predictions = body["predictions"]
    assert len(predictions) == 3
    assert len({p["id"] for p in predictions}) == 3
    class_names = [c.name for c in served_model.schema.classes]
    for prediction in predictions:
        assert set(prediction["probabilities"]) == set(class_names)
        assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
        winner = max(prediction["probabilities"], key=prediction["probabilities"].get)
        assert prediction["class_name"] == winner
        assert served_model.schema.class_name(prediction["label"]) == winner


def _instance_with(model: ServedModel, **changes: object) -> dict[str, object]:
    return {**typical(model), **changes}


def _without(model: ServedModel, name: str) -> dict[str, object]:
    row: dict[str, object] = dict(typical(model))
    del row[name]
    return row


# (case id, raw body, expected status, text the error must contain)
def bad_bodies(model: ServedModel) -> list[tuple[str, bytes, int, str]]:
    good = typical(model)
    first = model.schema.feature_names[0]

    def body(payload: object) -> bytes:
        return json.dumps(payload).encode()

    def with_raw_value(raw: str) -> bytes:
        # Literals json.dumps would not write for us (NaN, Infinity, huge numbers).
        return body({"instances": [_instance_with(model, **{first: "@@"})]}).replace(b'"@@"', raw.encode())

    return [
        ("not-json", b"{not json", 400, "not valid JSON"),
        ("invalid-utf8", b'{"instances": [\xff]}', 400, "not valid JSON"),
        ("empty-body", b"", 400, "not valid JSON"),
        ("body-is-list", body([good]), 422, "JSON object"),
        ("missing-instances", body({}), 422, "instances"),
        ("unknown-top-level", body({"instances": [good], "extra": 1}), 422, "extra"),
        ("instances-not-list", body({"instances": good}), 422, "instances"),
        ("empty-batch", body({"instances": []}), 422, "at least one"),
        ("too-many", body({"instances": [good] * (MAX_BATCH + 1)}), 422, f"at most {MAX_BATCH}"),
        ("instance-not-object", body({"instances": [1]}), 422, "instances[0]"),
        ("missing-feature", body({"instances": [_without(model, "proline")]}), 422, "instances[0].proline"),
        ("unknown-feature", body({"instances": [_instance_with(model, colour=1.0)]}), 422, "colour"),
        ("string-value", body({"instances": [_instance_with(model, hue="high")]}), 422, "instances[0].hue"),
        ("bool-value", body({"instances": [_instance_with(model, hue=True)]}), 422, "instances[0].hue"),
        ("null-value", body({"instances": [_instance_with(model, hue=None)]}), 422, "instances[0].hue"),
        ("list-value", body({"instances": [_instance_with(model, hue=[1.0])]}), 422, "instances[0].hue"),
        ("second-row-bad", body({"instances": [good, _without(model, "hue")]}), 422, "instances[1].hue"),
        ("nan", with_raw_value("NaN"), 422, f"instances[0].{first}"),
        ("infinity", with_raw_value("-Infinity"), 422, f"instances[0].{first}"),
        ("overflow-float", with_raw_value("1e400"), 422, f"instances[0].{first}"),
        ("overflow-int", with_raw_value("9" * 400), 422, f"instances[0].{first}"),
        ("float32-overflow", with_raw_value("1e39"), 422, f"instances[0].{first}"),
        ("too-large", body({"instances": [good], "pad": "x" * MAX_BODY}), 413, str(MAX_BODY)),
    ]


def test_bad_inputs_get_4xx_naming_the_field(client: TestClient, served_model: ServedModel) -> None:
    failures = []
    for case, raw, status, needle in bad_bodies(served_model):
        response = client.post("/predict", content=raw, headers={"Content-Type": "application/json"})
        detail = (
            response.json().get("detail", "")
            if response.headers["content-type"] == "application/json"
            else ""
        )
        if response.status_code != status or needle not in str(detail):
            failures.append(
                f"{case}: got {response.status_code} {response.text[:200]!r}, want {status} ~{needle!r}"
            )
    assert not failures, "\n".join(failures)


def test_chunked_body_over_the_limit_is_413(client: TestClient, served_model: ServedModel) -> None:
    def chunks() -> Iterator[bytes]:
        # No Content-Length: the limit must hold while streaming.
        yield b'{"instances": ['
        for _ in range(MAX_BODY // 100 + 2):
            yield b" " * 100
        yield json.dumps(typical(served_model)).encode() + b"]}"

    response = client.post("/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text


def test_feedback_unknown_id_bad_label_and_accepted(client: TestClient, served_model: ServedModel) -> None:
    prediction = client.post("/predict", json={"instances": [typical(served_model)]}).json()["predictions"][0]
    assert (
        client.post(
            "/feedback", json={"prediction_id": "nope", "true_label": 0}, headers=LABELLER
        ).status_code
        == 404
    )
    bad_label = client.post(
        "/feedback", json={"prediction_id": prediction["id"], "true_label": 99}, headers=LABELLER
    )
    assert bad_label.status_code == 422 and "true_label" in bad_label.text
    assert (
        client.post(
            "/feedback", json={"prediction_id": prediction["id"], "true_label": "x"}, headers=LABELLER
        ).status_code
        == 422
    )
    assert (
        client.post("/feedback", json={"prediction_id": prediction["id"]}, headers=LABELLER).status_code
        == 422
    )
    assert (
        client.post(
            "/feedback", content=b"{", headers={"Content-Type": "application/json", **LABELLER}
        ).status_code
        == 422
    )
    # Posted right after the prediction: acknowledged means committed, so the store has it already.
    accepted = client.post(
        "/feedback",
        json={"prediction_id": prediction["id"], "true_label": prediction["label"]},
        headers=LABELLER,
    )
    assert accepted.status_code == 200, accepted.text
    metrics = client.get("/metrics").text
    assert metric_value(metrics, "mlops_feedback_total", result="accepted") == 1
    assert metric_value(metrics, "mlops_feedback_total", result="unknown_prediction") == 1


def test_feedback_requires_its_own_bearer_token(client: TestClient, served_model: ServedModel) -> None:
    prediction = client.post("/predict", json={"instances": [typical(served_model)]}).json()["predictions"][0]
    body = {"prediction_id": prediction["id"], "true_label": prediction["label"]}
    missing = client.post("/feedback", json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["field"] == "Authorization" and "MLSTACK_FEEDBACK_TOKEN" in missing.json()["detail"]
    wrong = client.post("/feedback", json=body, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401 and "wrong bearer token" in wrong.json()["detail"]
    # The admin token is a different secret: it does not label predictions.
    admin = client.post("/feedback", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert admin.status_code == 401
    # Authentication comes before the body: an anonymous caller learns nothing about the schema.
    assert client.post("/feedback", json={"nonsense": True}).status_code == 401
    right = client.post("/feedback", json=body, headers=LABELLER)
    assert right.status_code == 200 and right.json()["status"] == "accepted"
    metrics = client.get("/metrics").text
    assert metric_value(metrics, "mlops_feedback_total", result="accepted") == 1


def test_feedback_is_disabled_without_a_token(
    tmp_path: Path, served_model: ServedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLSTACK_FEEDBACK_TOKEN", raising=False)
    with TestClient(create_app(unit_config(tmp_path), model=served_model, admin_token=TOKEN)) as disabled:
        prediction = disabled.post("/predict", json={"instances": [typical(served_model)]}).json()
        body = {"prediction_id": prediction["predictions"][0]["id"], "true_label": 0}
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": f"Bearer {TOKEN}"}):
            response = disabled.post("/feedback", json=body, headers=headers)
            assert response.status_code == 403, response.text
            assert "feedback is disabled: set MLSTACK_FEEDBACK_TOKEN" in response.json()["detail"]


def test_openapi_declares_the_feedback_token(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["FeedbackToken"]["type"] == "http" and schemes["FeedbackToken"]["scheme"] == "bearer"
    assert "MLSTACK_FEEDBACK_TOKEN" in schemes["FeedbackToken"]["description"]
    assert doc["paths"]["/feedback"]["post"]["security"] == [{"FeedbackToken": []}]
    assert {"401", "403"} <= set(doc["paths"]["/feedback"]["post"]["responses"])


def test_admin_reload_requires_the_bearer_token(client: TestClient) -> None:
    missing = client.post("/admin/reload")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong = client.post("/admin/reload", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    basic = client.post("/admin/reload", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert basic.status_code == 401
    # Right token; this app serves an injected model, so there is nothing to reload.
    right = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 503 and "fixed model" in right.json()["detail"]


def test_admin_reload_is_disabled_without_a_token(
    tmp_path: Path, served_model: ServedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLSTACK_ADMIN_TOKEN", raising=False)
    with TestClient(create_app(unit_config(tmp_path), model=served_model)) as disabled:
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer anything"}):
            response = disabled.post("/admin/reload", headers=headers)
            assert response.status_code == 403
            assert "MLSTACK_ADMIN_TOKEN" in response.json()["detail"]


def test_health_ready_version(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["model_version"] == "7"
    version = client.get("/version").json()
    assert version["model"]["version"] == "7" and version["model"]["runtime"] == "sklearn"
    assert re.match(r"\d{4}-\d\d-\d\dT", version["loaded_at"])


def test_not_ready_while_mlflow_is_unreachable(tmp_path: Path, served_model: ServedModel) -> None:
    """No model injected and nothing listening at the tracking URI: 503s with the reason, never a crash."""
    with TestClient(create_app(unit_config(tmp_path), admin_token=TOKEN)) as loading:
        # A few failed polls (reload interval 0.2 s, startup backoff from 0.5 s).
        def failed_polls() -> float:
            text = loading.get("/metrics").text
            return metric_value(text, "mlops_model_reload_total", result="failure") or 0

        wait_until(lambda: failed_polls() >= 2, timeout=30, interval=0.05, what="two failed model polls")
        ready = loading.get("/readyz")
        assert ready.status_code == 503 and "cannot resolve" in ready.json()["detail"]
        assert loading.get("/healthz").status_code == 200
        predict = loading.post("/predict", json={"instances": [typical(served_model)]})
        assert predict.status_code == 503
        assert loading.get("/version").status_code == 503
        assert loading.get("/schema").status_code == 503
        reload = loading.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert reload.status_code == 503 and reload.json()["result"] == "failure"
        assert (
            metric_value(loading.get("/metrics").text, "mlops_model_reload_total", result="failure") or 0
        ) >= 2


def predictor_metric_names() -> set[str]:
    """The predictor table of docs/metrics.md: the contract for /metrics."""
    text = (REPO_ROOT / "docs" / "metrics.md").read_text()
    section = text.split("## Predictor", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(mlops_[a-z_]+)`", section, flags=re.MULTILINE))


def test_metrics_match_the_catalogue(client: TestClient, served_model: ServedModel) -> None:
    client.post("/predict", json={"instances": [typical(served_model)] * 2})
    client.post("/predict", content=b"{", headers={"Content-Type": "application/json"})
    text = client.get("/metrics").text
    families = family_names(text)
    documented = predictor_metric_names()
    assert len(documented) >= 13
    missing = {name.removesuffix("_total") for name in documented} - families
    assert not missing, f"documented but not exported: {sorted(missing)}"
    predicted = {
        name: metric_value(text, "mlops_predictions_total", model_version="7", predicted_class=name)
        for name in served_model.class_names
    }
    assert sum(v or 0 for v in predicted.values()) == 2
    assert metric_value(text, "mlops_prediction_batch_size_count", model_version="7") == 1
    ok = {"route": "/predict", "method": "POST", "status": "200", "model_version": "7"}
    assert metric_value(text, "mlops_http_requests_total", **ok) == 1
    assert metric_value(text, "mlops_http_request_duration_seconds_bucket", le="0.00025", **ok) is not None
    assert metric_value(text, "mlops_http_requests_total", route="/predict", status="400") == 1
    info = {"model": "wine-classifier", "version": "7", "alias": "champion", "runtime": "sklearn"}
    assert metric_value(text, "mlops_model_info", **info) == 1


def test_openapi_request_schema_comes_from_the_feature_schema(
    client: TestClient, served_model: ServedModel
) -> None:
    document = client.get("/openapi.json").json()
    instance = document["components"]["schemas"]["Instance"]
    assert instance["required"] == served_model.schema.feature_names
    assert set(instance["properties"]) == set(served_model.schema.feature_names)
    assert instance["additionalProperties"] is False
    request = document["components"]["schemas"]["PredictRequest"]
    assert request["properties"]["instances"]["maxItems"] == MAX_BATCH
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/PredictRequest"}
    assert client.get("/docs").status_code == 200


def test_form_and_static_files_are_served(client: TestClient, served_model: ServedModel) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'id="predict-form"' in page.text and "/static/app.js" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no external CDN
    script = client.get("/static/app.js")
    assert script.status_code == 200 and 'fetch("/predict"' in script.text
    schema = client.get("/schema").json()
    assert [f["name"] for f in schema["features"]] == served_model.schema.feature_names
    assert schema["max_batch"] == MAX_BATCH


def test_every_acknowledged_prediction_is_in_the_store_when_the_response_arrives(
    tmp_path: Path, served_model: ServedModel
) -> None:
    config = unit_config(tmp_path)
    store = PredictionStore(config.prediction_store_url)
    try:
        with TestClient(create_app(config, model=served_model)) as app_client:
            for _ in range(20):
                body = app_client.post("/predict", json={"instances": [typical(served_model)] * 3}).json()
                ids = {p["id"] for p in body["predictions"]}
                assert len(ids) == 3 and ids <= store.prediction_ids()  # read by another connection
    finally:
        store.dispose()


def test_a_failing_store_gets_503_with_retry_after_and_nothing_is_acknowledged(
    tmp_path: Path, served_model: ServedModel
) -> None:
    """A real SQLite failure (the table renamed away by another connection): refused, counted, not stored."""
    config = unit_config(tmp_path)
    database = Path(config.prediction_store_url.removeprefix("sqlite:///"))
    with TestClient(create_app(config, model=served_model)) as app_client:
        assert app_client.post("/predict", json={"instances": [typical(served_model)]}).status_code == 200
        with sqlite3.connect(database) as conn:
            conn.execute("ALTER TABLE predictions RENAME TO predictions_away")
        refused = app_client.post("/predict", json={"instances": [typical(served_model)] * 2})
        again = app_client.post("/predict", json={"instances": [typical(served_model)]})
        metrics = app_client.get("/metrics").text
    for response in (refused, again):
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"].isdigit() and int(response.headers["Retry-After"]) >= 1
        assert "prediction store is unavailable" in response.json()["detail"]
        assert "predictions" not in response.json()
    assert "no such table" in refused.json()["detail"]
    assert metric_value(metrics, "mlops_prediction_log_refused_total", reason="store_unavailable") == 3
    assert metric_value(metrics, "mlops_prediction_log_write_errors_total") == 1
    assert metric_value(metrics, "mlops_http_requests_total", route="/predict", status="503") == 2
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM predictions_away").fetchone() == (1,)


def test_prediction_log_can_be_switched_off(tmp_path: Path, served_model: ServedModel) -> None:
    """prediction_store.enabled=false: predictions are served, nothing is logged, feedback says why."""
    config = unit_config(tmp_path, **{"prediction_store.enabled": False})
    app = create_app(config, model=served_model, admin_token=TOKEN, feedback_token=FEEDBACK_TOKEN)
    with TestClient(app) as client:
        response = client.post("/predict", json={"instances": [typical(served_model)]})
        assert response.status_code == 200
        prediction_id = response.json()["predictions"][0]["id"]
        feedback = client.post(
            "/feedback", json={"prediction_id": prediction_id, "true_label": 0}, headers=LABELLER
        )
        assert feedback.status_code == 503 and "disabled" in feedback.json()["detail"]
    assert not (tmp_path / "state" / "predictions.db").exists()


def test_out_of_range_inputs_are_served_and_counted_per_feature(
    client: TestClient, served_model: ServedModel
) -> None:
    spec = served_model.schema.features[0]
    assert spec.minimum is not None
    first = {f.name: 0 for f in served_model.schema.features}
    assert metric_value(client.get("/metrics").text, "mlops_input_out_of_range_total", feature=spec.name) == 0
    absurd = {**typical(served_model), spec.name: 1e6}
    below = {**typical(served_model), spec.name: spec.minimum - 1, served_model.schema.features[1].name: -1e3}
    edge = {f.name: f.maximum for f in served_model.schema.features}  # the training maximum is in range
    response = client.post("/predict", json={"instances": [absurd, below, edge, typical(served_model)]})
    assert response.status_code == 200, response.text  # accepted: that is how drift shows
    metrics = client.get("/metrics").text
    counts = {
        f.name: metric_value(metrics, "mlops_input_out_of_range_total", feature=f.name, model_version="7")
        for f in served_model.schema.features
    }
    expected = {**first, spec.name: 2, served_model.schema.features[1].name: 1}
    assert counts == expected


def test_values_the_model_cannot_score_are_refused_not_answered_with_nulls(
    tmp_path: Path, served_model: ServedModel
) -> None:
    """float32-valid values this far outside the training range overflow inside a float32 ONNX model
    (NaN probabilities): 422 naming the instance, not a 200 with null probabilities."""
    config = isolated_config("http://127.0.0.1:9", Path("/nonexistent"))
    parts = split(load_base_dataset(config.data), config)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(
        parts.x_train.to_numpy(), parts.y_train
    )
    onnx_file = tmp_path / "model.onnx"
    sample = parts.x_train.to_numpy()[:1].astype(np.float32)
    onnx_file.write_bytes(
        to_onnx(pipeline, sample, options={"zipmap": False}, target_opset=17).SerializeToString()
    )
    onnx_model = dataclasses.replace(
        served_model, runtime="onnx", predict_proba=onnx_predict_proba(str(onnx_file))
    )
    extreme = dict.fromkeys(served_model.schema.feature_names, 3.0e38)
    extreme[served_model.schema.feature_names[0]] = -3.0e38
    with TestClient(create_app(unit_config(tmp_path), model=onnx_model)) as app_client:
        fine = app_client.post("/predict", json={"instances": [typical(served_model)]})
        response = app_client.post("/predict", json={"instances": [typical(served_model), extreme]})
    assert fine.status_code == 200, fine.text
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "instances[1]" and "not finite" in response.json()["detail"]
