"""The protocols users already speak, in-process: `mlflow models serve`'s /invocations and Open
Inference Protocol v2 give the answers /predict gives, log every row, and refuse bad input with a
4xx naming the value where the client put it.

The model is the real scikit-learn pipeline of test_api.py; the prediction log is real SQLite.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mlstack_api.main import create_app
from mlstack_api.model import ServedModel

from mlstack.store import PredictionStore
from tests.unit.api.test_api import (  # noqa: F401 - pytest fixtures
    _isolate_mlflow_client,
    served_model,
    unit_config,
)

V2_INFER = "/v2/models/wine-classifier/infer"


@pytest.fixture
def app(tmp_path: Path, served_model: ServedModel) -> Iterator[tuple[TestClient, PredictionStore]]:  # noqa: F811
    config = unit_config(tmp_path)
    store = PredictionStore(config.prediction_store_url)
    with TestClient(create_app(config, model=served_model)) as client:
        yield client, store
    store.dispose()


def rows(model: ServedModel) -> list[dict[str, float]]:
    """Three different instances (the classes' typical values are near each other: spread them)."""
    typical = model.schema.typical_instance()
    spread = {spec.name: spec.maximum for spec in model.schema.features}
    low = {spec.name: spec.minimum for spec in model.schema.features}
    return [typical, spread, low]


def csv_body(instances: list[dict[str, Any]], names: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(names)
    writer.writerows([[instance[n] for n in names] for instance in instances])
    return out.getvalue().encode()


def mlflow_bodies(instances: list[dict[str, float]], names: list[str]) -> dict[str, tuple[Any, str]]:
    matrix = [[instance[n] for n in names] for instance in instances]
    return {
        "dataframe_split": (
            {"dataframe_split": {"columns": names, "data": matrix, "index": [0, 1, 2]}},
            "json",
        ),
        "dataframe_split (reordered columns)": (
            {"dataframe_split": {"columns": names[::-1], "data": [row[::-1] for row in matrix]}},
            "json",
        ),
        "dataframe_records": ({"dataframe_records": instances}, "json"),
        "instances (records)": ({"instances": instances}, "json"),
        "instances (rows)": ({"instances": matrix}, "json"),
        "inputs (columns)": ({"inputs": {n: [instance[n] for instance in instances] for n in names}}, "json"),
        "inputs (rows)": ({"inputs": matrix, "params": {}}, "json"),
        "csv": (csv_body(instances, names), "csv"),
    }


def post_mlflow(client: TestClient, body: Any, kind: str) -> Any:
    if kind == "csv":
        return client.post("/invocations", content=body, headers={"Content-Type": "text/csv"})
    return client.post("/invocations", json=body)


def v2_bodies(instances: list[dict[str, float]], names: list[str]) -> dict[str, dict[str, Any]]:
    count = len(instances)
    return {
        "pd (one input per feature)": {
            "id": "r-1",
            "parameters": {"content_type": "pd"},
            "inputs": [
                {"name": n, "shape": [count], "datatype": "FP64", "data": [i[n] for i in instances]}
                for n in names
            ],
        },
        "one input per feature, [rows, 1], FP32": {
            "inputs": [
                {"name": n, "shape": [count, 1], "datatype": "FP32", "data": [[i[n]] for i in instances]}
                for n in reversed(names)
            ],
        },
        "np ([rows, features] tensor)": {
            "parameters": {"content_type": "np"},
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [count, len(names)],
                    "datatype": "FP64",
                    "data": [i[n] for i in instances for n in names],
                }
            ],
        },
    }


def test_the_same_rows_get_the_same_answers_through_every_protocol_and_are_all_logged(
    app: tuple[TestClient, PredictionStore],
    served_model: ServedModel,  # noqa: F811
) -> None:
    client, store = app
    instances = rows(served_model)
    names = served_model.schema.feature_names
    reference = client.post("/predict", json={"instances": instances}).json()["predictions"]
    labels = [p["label"] for p in reference]
    probabilities = [[p["probabilities"][c] for c in served_model.class_names] for p in reference]
    assert len(set(labels)) > 1, "the rows should not all be one class"
    requests_made = 1
    for name, (body, kind) in mlflow_bodies(instances, names).items():
        response = post_mlflow(client, body, kind)
        assert response.status_code == 200, (name, response.text)
        assert response.json() == {"predictions": labels}, name  # `mlflow models serve`'s shape
        requests_made += 1
    for name, body in v2_bodies(instances, names).items():
        response = client.post(V2_INFER, json=body)
        assert response.status_code == 200, (name, response.text)
        answer = response.json()
        outputs = {o["name"]: o for o in answer["outputs"]}
        assert (answer["model_name"], answer["model_version"]) == ("wine-classifier", "7")
        assert answer.get("id") == body.get("id")
        assert outputs["label"] == {"name": "label", "shape": [3], "datatype": "INT64", "data": labels}
        flat = [p for row in probabilities for p in row]
        assert outputs["probabilities"]["shape"] == [3, 3] and outputs["probabilities"][
            "data"
        ] == pytest.approx(flat)
        assert outputs["probabilities"]["parameters"]["class_names"] == list(served_model.class_names)
        assert outputs["class_name"]["data"] == [served_model.schema.class_name(label) for label in labels]
        assert len(set(outputs["prediction_id"]["data"])) == 3
        requests_made += 1
    stored = store.latest_window(1000)
    assert len(stored) == 3 * requests_made  # every protocol's rows are in the prediction log
    assert sorted(stored["prediction"].tolist()) == sorted(labels * requests_made)


def test_v2_asks_for_some_outputs_and_reads_versioned_paths(
    app: tuple[TestClient, PredictionStore],
    served_model: ServedModel,  # noqa: F811
) -> None:
    client, _store = app
    names = served_model.schema.feature_names
    body = v2_bodies(rows(served_model), names)["pd (one input per feature)"]
    body["outputs"] = [{"name": "prediction_id"}, {"name": "label"}]
    response = client.post("/v2/models/wine-classifier/versions/7/infer", json=body)
    assert response.status_code == 200, response.text
    assert [o["name"] for o in response.json()["outputs"]] == ["prediction_id", "label"]
    stale = client.post("/v2/models/wine-classifier/versions/6/infer", json=body)
    assert stale.status_code == 404 and "version '6'" in stale.json()["error"]
    metadata = client.get("/v2/models/wine-classifier").json()
    assert metadata["versions"] == ["7"] and [i["name"] for i in metadata["inputs"]] == names
    assert client.get("/v2/models/wine-classifier/versions/7/ready").json() == {
        "name": "wine-classifier",
        "ready": True,
    }
    assert client.get("/v2/models/other/ready").status_code == 404
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json()["name"] == "mlstack"
    for path in ("/ping", "/health"):
        assert client.get(path).status_code == 200


def bad_mlflow_requests(names: list[str], good: dict[str, float]) -> list[tuple[str, Any, str, int, str]]:
    """(what, body, kind, status, the field or text the answer must name)."""
    text = {**good, names[3]: "high"}
    return [
        ("not JSON", b"{", "raw-json", 400, "body"),
        ("a list", [good], "json", 400, "body"),
        ("two formats", {"instances": [good], "inputs": [good]}, "json", 400, "body"),
        ("no format", {"params": {}}, "json", 400, "body"),
        ("unknown key", {"instances": [good], "extra": 1}, "json", 400, "extra"),
        ("records not a list", {"dataframe_records": {"a": 1}}, "json", 400, "dataframe_records"),
        ("too many rows", {"instances": [good] * 6}, "json", 400, "instances"),
        ("empty", {"dataframe_records": []}, "json", 400, "dataframe_records"),
        (
            "a string value",
            {"dataframe_records": [good, text]},
            "json",
            400,
            f"dataframe_records[1].{names[3]}",
        ),
        (
            "missing column",
            {"dataframe_split": {"columns": names[1:], "data": [[1.0] * (len(names) - 1)]}},
            "json",
            400,
            f"dataframe_split.data[0].{names[0]}",
        ),
        (
            "ragged split row",
            {"dataframe_split": {"columns": names, "data": [[1.0]]}},
            "json",
            400,
            "dataframe_split.data[0]",
        ),
        ("short positional row", {"instances": [[1.0, 2.0]]}, "json", 400, "instances[0]"),
        (
            "ragged columns",
            {"inputs": {n: [1.0] * (1 + (n == names[0])) for n in names}},
            "json",
            400,
            "inputs",
        ),
        (
            "NaN in a column",
            {"inputs": {n: [float("nan") if n == names[2] else 1.0] for n in names}},
            "nan-json",
            400,
            f"inputs.{names[2]}[0]",
        ),
        ("csv text", csv_body([good, text], names), "csv", 400, f"csv[1].{names[3]}"),
        (
            "csv empty cell",
            (",".join(names) + "\n" + ",".join([""] + ["1"] * (len(names) - 1))).encode(),
            "csv",
            400,
            f"csv[0].{names[0]}",
        ),
        ("csv ragged line", (",".join(names) + "\n1,2\n").encode(), "csv", 400, "csv[0]"),
        ("csv not UTF-8", b"\xff\xfe", "csv", 400, "body"),
        ("other content type", b"<x/>", "xml", 415, "Content-Type"),
        ("latin-1", {"instances": [good]}, "latin1", 415, "Content-Type"),
    ]


def test_bad_mlflow_requests_get_a_4xx_naming_the_value(
    app: tuple[TestClient, PredictionStore],
    served_model: ServedModel,  # noqa: F811
) -> None:
    client, store = app
    names = served_model.schema.feature_names
    good = served_model.schema.typical_instance()
    for what, body, kind, status, named in bad_mlflow_requests(names, good):
        headers = {
            "json": "application/json", "raw-json": "application/json", "nan-json": "application/json",
            "csv": "text/csv", "xml": "application/xml", "latin1": "application/json; charset=latin-1",
        }[kind]  # fmt: skip
        if kind in ("json", "latin1"):
            response = client.post("/invocations", json=body, headers={"Content-Type": headers})
        elif kind == "nan-json":
            import json as stdlib_json

            response = client.post(
                "/invocations", content=stdlib_json.dumps(body), headers={"Content-Type": headers}
            )
        else:
            response = client.post("/invocations", content=body, headers={"Content-Type": headers})
        assert response.status_code == status, (what, response.text)
        answer = response.json()
        assert answer["error_code"] == "BAD_REQUEST" and answer["message"] == answer["detail"], what
        assert answer["field"] == named or named in answer["message"], (what, answer)
    assert store.count_predictions() == 0  # nothing refused was logged


def test_bad_v2_requests_get_a_4xx_naming_the_input(
    app: tuple[TestClient, PredictionStore],
    served_model: ServedModel,  # noqa: F811
) -> None:
    client, store = app
    names = served_model.schema.feature_names
    good = served_model.schema.typical_instance()

    def column(
        name: str, data: list[Any], datatype: str = "FP64", shape: list[int] | None = None
    ) -> dict[str, Any]:
        return {"name": name, "shape": shape or [len(data)], "datatype": datatype, "data": data}

    columns = [column(n, [good[n]]) for n in names]
    cases: list[tuple[str, Any, str]] = [
        ("not an object", [1], "body"),
        ("no inputs", {"id": "x"}, "inputs"),
        ("unknown field", {"inputs": columns, "extra": 1}, "extra"),
        (
            "BYTES input",
            {"inputs": [*columns[1:], column(names[0], ["a"], "BYTES")]},
            f"inputs.{names[0]}.datatype",
        ),
        (
            "shape mismatch",
            {"inputs": [*columns[1:], column(names[0], [1.0, 2.0], shape=[3])]},
            f"inputs.{names[0]}.data",
        ),
        ("missing input", {"inputs": columns[1:]}, f"inputs.{names[0]}"),
        ("unknown input", {"inputs": [*columns, column("colour", [1.0])]}, "inputs.colour"),
        ("duplicate input", {"inputs": [*columns, columns[0]]}, f"inputs.{names[0]}"),
        ("a string value", {"inputs": [*columns[1:], column(names[0], ["x"])]}, f"inputs.{names[0]}.data[0]"),
        (
            "beyond float32",
            {"inputs": [*columns[1:], column(names[0], [1e39])]},
            f"inputs.{names[0]}.data[0]",
        ),
        ("rows differ", {"inputs": [*columns[1:], column(names[0], [1.0, 2.0])]}, "inputs"),
        ("too many rows", {"inputs": [column(n, [good[n]] * 6) for n in names]}, "inputs"),
        (
            "tensor of the wrong width",
            {"inputs": [column("input-0", [1.0, 2.0], shape=[1, 2])]},
            "inputs.input-0.shape",
        ),
        (
            "bad value in a tensor",
            {"inputs": [column("input-0", [True] + [1.0] * (len(names) - 1), shape=[1, len(names)])]},
            "inputs.input-0.data[0][0]",
        ),
        (
            "unknown content type",
            {"parameters": {"content_type": "str"}, "inputs": columns},
            "parameters.content_type",
        ),
        ("unknown output", {"inputs": columns, "outputs": [{"name": "logits"}]}, "outputs.logits"),
    ]
    for what, body, named in cases:
        response = client.post(V2_INFER, json=body)
        assert response.status_code == 400, (what, response.text)
        answer = response.json()
        assert answer["error"] == answer["detail"] and answer["field"] == named, (what, answer)
    assert client.post("/v2/models/iris/infer", json={"inputs": columns}).status_code == 404
    assert store.count_predictions() == 0
