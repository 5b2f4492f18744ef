"""The predictor serving raw rows of mixed types: categories as strings, null where allowed, unseen ones.

The model is the real pipeline mlstack trains (the schema's ColumnTransformer and a logistic
regression) on the committed mixed-type fixture, injected with `create_app(model=...)`, served by
the sklearn runtime and by ONNX Runtime from its real ONNX export.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from mlstack_api.main import create_app
from mlstack_api.model import ServedModel, onnx_predict_proba, sklearn_predict_proba
from sklearn.linear_model import LogisticRegression

from mlstack import contract
from mlstack.config import REPO_ROOT, Config, load_config
from mlstack.data import load_base_dataset, split
from mlstack.feature_types import infer_schema
from mlstack.preprocessing import model_pipeline
from mlstack.schema import FeatureSchema
from mlstack.train import export_onnx
from tests.support.metrics import metric_total, parse_metrics
from tests.support.net import free_port
from tests.support.services import preserved_process_globals

EXAMPLE = REPO_ROOT / "model-training" / "examples" / "customers.yaml"
FEEDBACK_TOKEN = "unit-test-feedback-token"


@pytest.fixture(autouse=True)
def _isolate_mlflow_client() -> Iterator[None]:
    with preserved_process_globals():
        yield


@pytest.fixture(scope="module")
def trained() -> tuple[Any, FeatureSchema, bytes]:
    config = load_config(EXAMPLE, environ={})
    dataset = load_base_dataset(config.data)
    schema = infer_schema(dataset.features, dataset.target, dataset.class_names, "outcome", config.data)
    parts = split(dataset, config)
    x_train, x_test = schema.model_frame(parts.x_train), schema.model_frame(parts.x_test)
    model = model_pipeline(schema, LogisticRegression(max_iter=2000)).fit(x_train, parts.y_train)
    payload, status, detail = export_onnx(model, x_test, schema, 1e-4)
    assert status == contract.ONNX_PASSED and payload is not None, detail
    return model, schema, payload


def served(trained: tuple[Any, FeatureSchema, bytes], runtime: str) -> ServedModel:
    model, schema, payload = trained
    if runtime == "onnx":
        with tempfile.NamedTemporaryFile(suffix=".onnx") as handle:
            handle.write(payload)
            handle.flush()
            proba = onnx_predict_proba(handle.name, schema)
    else:
        proba = sklearn_predict_proba(model, schema.feature_names)
    return ServedModel(
        name="customer-outcome",
        version="3",
        alias="champion",
        run_id="run-unit",
        runtime=runtime,  # type: ignore[arg-type]
        schema=schema,
        predict_proba=proba,
        loaded_at=time.time(),
        load_seconds=0.01,
    )


def unit_config(tmp_path: Path) -> Config:
    return load_config(
        EXAMPLE,
        overrides={
            "mlflow.tracking_uri": f"http://127.0.0.1:{free_port()}",
            "services.state_dir": str(tmp_path / "state"),
            "api.max_batch": 50,
        },
        environ={},
    )


@pytest.fixture(params=["sklearn", "onnx"])
def app(
    request: pytest.FixtureRequest, tmp_path: Path, trained: tuple[Any, FeatureSchema, bytes]
) -> Iterator[tuple[TestClient, Config]]:
    config = unit_config(tmp_path)
    application = create_app(config, model=served(trained, request.param), feedback_token=FEEDBACK_TOKEN)
    with TestClient(application) as client:
        yield client, config


def row(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "plan": "standard",
        "region": "north",
        "device": "ios",
        "signup_channel": "ads",
        "tenure_months": 14,
        "monthly_spend": 25.5,
        "support_tickets": 2,
        "satisfaction": 3.4,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def test_raw_rows_with_nulls_gaps_and_unseen_categories_are_served(app: tuple[TestClient, Config]) -> None:
    client, config = app
    rows = [
        row(),
        row(satisfaction=None, region=None, monthly_spend=None),  # null where missing is allowed
        row(signup_channel=""),  # "" is a missing category
        row(satisfaction=..., support_tickets=...),  # absent nullable keys are null
        row(device="smart-tv", region="offshore"),  # unseen categories of open vocabularies
        row(customer_id="C999"),  # the id column may be sent
    ]
    response = client.post("/predict", json={"instances": rows})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 6
    for prediction in predictions:
        assert prediction["class_name"] in {"cancels", "downgrades", "renews"}
        assert abs(sum(prediction["probabilities"].values()) - 1) < 1e-5
    text = client.get("/metrics").text
    metrics = parse_metrics(text)
    assert (
        metric_total(metrics, "mlops_input_unknown_category_total", feature="device", model_version="3") == 1
    )
    assert (
        metric_total(metrics, "mlops_input_unknown_category_total", feature="region", model_version="3") == 1
    )
    assert metric_total(metrics, "mlops_input_unknown_category_total", feature="signup_channel") == 0
    # The log holds the rows as sent (every feature: null for one left out) and the id.
    with sqlite3.connect(config.state_dir / contract.STATE_PREDICTIONS_DB) as db:
        logged = [orjson.loads(r[0]) for r in db.execute("SELECT features FROM predictions ORDER BY rowid")]
    assert logged[3]["satisfaction"] is None and logged[3]["support_tickets"] is None
    assert logged[2]["signup_channel"] == "" and logged[4]["device"] == "smart-tv"  # "": missing to training
    assert logged[5]["customer_id"] == "C999" and "customer_id" not in logged[0]


def test_both_runtimes_agree_on_raw_rows(tmp_path: Path, trained: tuple[Any, FeatureSchema, bytes]) -> None:
    rows = [
        row(),
        row(satisfaction=None, region=None),
        row(device="smart-tv"),
        row(plan="premium", tenure_months=70),
    ]
    answers = {}
    for runtime in ("sklearn", "onnx"):
        with TestClient(
            create_app(unit_config(tmp_path / runtime), model=served(trained, runtime))
        ) as client:
            body = client.post("/predict", json={"instances": rows}).json()
        answers[runtime] = [(p["label"], p["probabilities"]) for p in body["predictions"]]
    for (label_a, proba_a), (label_b, proba_b) in zip(answers["sklearn"], answers["onnx"], strict=True):
        assert label_a == label_b
        assert all(abs(proba_a[k] - proba_b[k]) < 1e-4 for k in proba_a)


@pytest.mark.parametrize(
    ("instance", "field", "detail"),
    [
        (row(plan="gold"), "instances[0].plan", "unknown category 'gold'; expected one of ['basic', "),
        (row(plan=None), "instances[0].plan", "is required"),
        (row(plan=...), "instances[0].plan", "missing feature"),
        (row(device=None), "instances[0].device", "is required"),
        (row(device=3), "instances[0].device", "must be a string (a category), got int"),
        (row(tenure_months="14"), "instances[0].tenure_months", "must be a number, got str"),
        (row(tenure_months=None), "instances[0].tenure_months", "is required"),
        (row(satisfaction=float("nan")), "instances[0].satisfaction", "must be finite"),
        (row(colour="red"), "instances[0].colour", "unknown feature"),
        (row(customer_id=["C1"]), "instances[0].customer_id", "the id must be a string, a number or null"),
    ],
)  # fmt: skip
def test_bad_raw_rows_get_422_naming_the_field(
    app: tuple[TestClient, Config], instance: dict[str, Any], field: str, detail: str
) -> None:
    client, _ = app
    body = json.dumps({"instances": [instance]}).encode()  # the stdlib writes NaN literally
    response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field and detail in response.json()["detail"]


def test_openapi_shows_types_categories_and_nullability(app: tuple[TestClient, Config]) -> None:
    client, _ = app
    instance = client.get("/openapi.json").json()["components"]["schemas"]["Instance"]
    properties = instance["properties"]
    assert properties["plan"]["type"] == "string"
    assert properties["plan"]["enum"] == ["basic", "standard", "premium"]  # closed: declared categories
    region = properties["region"]
    assert region["type"] == ["string", "null"]
    assert region["anyOf"][0]["enum"] == ["east", "north", "south", "west", None]  # open: seen categories
    assert region["anyOf"][1] == {"type": "string", "description": region["anyOf"][1]["description"]}
    assert (
        properties["tenure_months"]["type"] == "number"
        and "training range 1 to 72" in properties["tenure_months"]["description"]
    )
    assert properties["satisfaction"]["type"] == ["number", "null"]
    assert properties["customer_id"]["type"] == ["string", "number", "null"]
    assert sorted(instance["required"]) == ["device", "plan", "tenure_months"]  # nullable ones may be absent
    example = client.get("/openapi.json").json()["components"]["schemas"]["PredictRequest"]["example"]
    assert client.post("/predict", json=example).status_code == 200


def test_the_schema_endpoint_carries_types_for_the_form(app: tuple[TestClient, Config]) -> None:
    client, _ = app
    features = {f["name"]: f for f in client.get("/schema").json()["features"]}
    assert features["plan"]["type"] == "categorical" and features["plan"]["unknown"] == "error"
    assert (
        features["device"]["categories"] == ["android", "ios", "web"] and not features["device"]["nullable"]
    )
    assert features["satisfaction"]["nullable"] and features["satisfaction"]["type"] == "numeric"
    script = client.get("/static/app.js").text
    assert 'createElement("select")' in script and "(missing)" in script


def test_every_protocol_takes_mixed_rows(app: tuple[TestClient, Config]) -> None:
    """/predict, /invocations (records, split, CSV) and Open Inference v2 (BYTES for categories) agree."""
    client, _ = app
    rows = [row(), row(region=None, satisfaction=None), row(device="smart-tv", plan="premium")]
    names = list(rows[0])
    expected = [p["label"] for p in client.post("/predict", json={"instances": rows}).json()["predictions"]]

    records = client.post("/invocations", json={"dataframe_records": rows})
    assert records.status_code == 200, records.text
    split_rows = [[r[n] for n in names] for r in rows]
    split_body = {"dataframe_split": {"columns": names, "data": split_rows}}
    csv_lines = [",".join(names)] + [",".join("" if r[n] is None else str(r[n]) for n in names) for r in rows]
    as_csv = client.post(
        "/invocations", content="\n".join(csv_lines) + "\n", headers={"Content-Type": "text/csv"}
    )
    assert as_csv.status_code == 200, as_csv.text
    split = client.post("/invocations", json=split_body)
    assert (
        records.json()["predictions"]
        == split.json()["predictions"]
        == as_csv.json()["predictions"]
        == expected
    )

    categorical = {"plan", "region", "device", "signup_channel"}
    inputs = [
        {"name": n, "shape": [len(rows)], "datatype": "BYTES" if n in categorical else "FP64",
         "data": [r[n] for r in rows]}
        for n in names
    ]  # fmt: skip
    v2 = client.post(
        "/v2/models/customer-outcome/infer", json={"inputs": inputs, "parameters": {"content_type": "pd"}}
    )
    assert v2.status_code == 200, v2.text
    labels = next(o for o in v2.json()["outputs"] if o["name"] == "label")["data"]
    assert labels == expected
    wrong = [{**i, "datatype": "FP64"} if i["name"] == "plan" else i for i in inputs]
    refused = client.post("/v2/models/customer-outcome/infer", json={"inputs": wrong})
    assert refused.status_code == 400 and refused.json()["field"] == "inputs.plan.datatype"
    metadata = client.get("/v2/models/customer-outcome").json()
    assert {i["name"]: i["datatype"] for i in metadata["inputs"]}["device"] == "BYTES"
    closed = client.post("/invocations", json={"dataframe_records": [row(plan="gold")]})
    assert closed.status_code == 400 and closed.json()["field"] == "dataframe_records[0].plan"
    text = client.get("/metrics").text
    assert metric_total(parse_metrics(text), "mlops_input_unknown_category_total", feature="device") == 5


MIXED_NAMES = list(row())
CATEGORICAL = {"plan", "region", "device", "signup_channel"}


def protocol_bodies(rows: list[dict[str, Any]]) -> dict[str, tuple[str, dict[str, Any]]]:
    """The same rows in each protocol's encoding: (path, keyword arguments of the client's post)."""
    csv_lines = [",".join(MIXED_NAMES)] + [
        ",".join("" if r.get(n) is None else str(r.get(n)) for n in MIXED_NAMES) for r in rows
    ]
    inputs = [
        {"name": n, "shape": [len(rows)], "datatype": "BYTES" if n in CATEGORICAL else "FP64",
         "data": [r.get(n) for r in rows]}
        for n in MIXED_NAMES
    ]  # fmt: skip
    return {
        "records": ("/invocations", {"json": {"dataframe_records": rows}}),
        "split": (
            "/invocations",
            {
                "json": {
                    "dataframe_split": {
                        "columns": MIXED_NAMES,
                        "data": [[r.get(n) for n in MIXED_NAMES] for r in rows],
                    }
                }
            },
        ),
        "csv": (
            "/invocations",
            {"content": "\n".join(csv_lines) + "\n", "headers": {"Content-Type": "text/csv"}},
        ),
        "v2": ("/v2/models/customer-outcome/infer", {"json": {"inputs": inputs}}),
    }


# Where each protocol puts row 1's feature f, as its 4xx names it.
FIELD_OF = {
    "records": "dataframe_records[1].{f}",
    "split": "dataframe_split.data[1].{f}",
    "csv": "csv[1].{f}",
    "v2": "inputs.{f}.data[1]",
}


@pytest.mark.parametrize(
    ("change", "feature", "detail", "protocols"),
    [
        ({"plan": "gold"}, "plan", "unknown category 'gold'; expected one of", "records split csv v2"),
        ({"device": None}, "device", "is required (missing values are not allowed)", "records split csv v2"),
        ({"device": ""}, "device", "is required (missing values are not allowed)", "records split csv v2"),
        ({"tenure_months": None}, "tenure_months", "is required", "records split csv v2"),
        ({"tenure_months": "many"}, "tenure_months", "must be a number", "records split csv v2"),
        ({"device": 3}, "device", "must be a string (a category), got int", "records split v2"),  # CSV: text
    ],
)  # fmt: skip
def test_every_protocol_refuses_a_bad_mixed_row_naming_the_field(
    app: tuple[TestClient, Config], change: dict[str, Any], feature: str, detail: str, protocols: str
) -> None:
    """A bad categorical or numeric value gets a 4xx (400: the status MLflow and v2 clients expect)
    whose field names the row and feature in the protocol's own terms, and nothing is served or logged."""
    client, config = app
    assert client.post("/predict", json={"instances": [row()]}).status_code == 200  # one row served, logged
    before = metric_total(parse_metrics(client.get("/metrics").text), "mlops_predictions_total")
    assert before == 1
    bodies = protocol_bodies([row(), row(**change)])
    for protocol in protocols.split():
        path, arguments = bodies[protocol]
        response = client.post(path, **arguments)
        assert response.status_code == 400, (protocol, response.text)
        body = response.json()
        field = FIELD_OF[protocol].format(f=feature)
        assert body["field"] == field, (protocol, body)
        assert body["detail"].startswith(f"{field}: ") and detail in body["detail"], (protocol, body)
    assert metric_total(parse_metrics(client.get("/metrics").text), "mlops_predictions_total") == before
    with sqlite3.connect(config.state_dir / contract.STATE_PREDICTIONS_DB) as db:
        assert db.execute("SELECT count(*) FROM predictions").fetchone()[0] == 1  # the good row only
