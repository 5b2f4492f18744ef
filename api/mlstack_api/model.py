"""Loading one registered model version with the fastest runtime it supports (ONNX Runtime or sklearn)."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from mlstack import contract
from mlstack.contract import TAG_ONNX_ARTIFACT, TAG_ONNX_PARITY
from mlstack.preprocessing import onnx_feeds
from mlstack.schema import FeatureSchema

log = logging.getLogger(__name__)

InferenceRuntime = Literal["onnx", "sklearn"]  # how a version is served (not a deployment runtime)
# A validated batch as the model takes it: a float matrix in feature order for a schema of required
# numbers (the fast path), else the model frame (`FeatureSchema.model_frame`: float64 and category text).
ModelInput: TypeAlias = np.ndarray | pd.DataFrame
ProbaFn = Callable[[ModelInput], np.ndarray]


class ModelLoadError(RuntimeError):
    """A model version could not be loaded; the message says which and why."""


@dataclass(frozen=True)
class ServedModel:
    """One loaded model version: everything a request needs, immutable so it can be swapped whole."""

    name: str
    version: str
    alias: str
    run_id: str
    runtime: InferenceRuntime
    schema: FeatureSchema
    predict_proba: ProbaFn = field(repr=False)
    loaded_at: float
    load_seconds: float
    class_labels: tuple[int, ...] = field(init=False)
    class_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_labels", tuple(c.label for c in self.schema.classes))
        object.__setattr__(self, "class_names", tuple(c.name for c in self.schema.classes))

    def info(self) -> dict[str, Any]:
        """The `model` block of responses."""
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "run_id": self.run_id,
            "runtime": self.runtime,
        }


def onnx_artifact_path(version: ModelVersion) -> str | None:
    """The ONNX artifact to serve, or None when the version must be served with sklearn.

    ONNX is used only when the training run proved parity with the sklearn model
    (`onnx_parity=passed`) and says where the artifact is (`onnx_artifact`).
    """
    tags = version.tags or {}
    if tags.get(TAG_ONNX_PARITY) != contract.ONNX_PASSED:
        return None
    return tags.get(TAG_ONNX_ARTIFACT) or None


def onnx_predict_proba(model_path: str, schema: FeatureSchema | None = None) -> ProbaFn:
    """Probabilities from an ONNX Runtime session (single-threaded: requests are tiny).

    A model with one input takes the feature matrix (numbers only); a model with one input per
    feature takes columns: float32 numbers (NaN = missing) and strings ("" = missing), and needs
    the schema to build them.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One request is one tiny matrix: threading only adds contention on a small box.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    model_input = inputs[0]
    input_name = model_input.name
    dtype = np.float64 if model_input.type == "tensor(double)" else np.float32
    outputs = session.get_outputs()
    proba_names = [o.name for o in outputs if "prob" in o.name.lower()]
    proba_name = proba_names[0] if proba_names else outputs[-1].name
    run = session.run
    per_column: FeatureSchema | None = None  # the schema, when the model takes one input per feature
    if len(inputs) > 1:
        per_column = schema
    if len(inputs) > 1 and (schema is None or {i.name for i in inputs} != set(schema.feature_names)):
        raise ModelLoadError(
            f"the ONNX model's inputs {[i.name for i in inputs]} are not the features "
            f"{schema.feature_names if schema else '(no schema given)'}"
        )

    def predict_proba(batch: ModelInput) -> np.ndarray:
        if per_column is not None:
            names = per_column.feature_names
            frame = batch if isinstance(batch, pd.DataFrame) else pd.DataFrame(batch, columns=names)
            feeds = onnx_feeds(frame, per_column)
        else:
            matrix = batch.to_numpy(dtype=np.float64) if isinstance(batch, pd.DataFrame) else batch
            feeds = {input_name: matrix.astype(dtype, copy=False)}
        (result,) = run([proba_name], feeds)
        if isinstance(result, list):  # ZipMap output: one {label: probability} dict per row
            return np.asarray([[row[k] for k in sorted(row)] for row in result], dtype=np.float64)
        return np.asarray(result)

    return predict_proba


def sklearn_predict_proba(model: Any, feature_names: list[str]) -> ProbaFn:
    """Probabilities from a fitted sklearn classifier or pipeline."""
    wants_frame = getattr(model, "feature_names_in_", None) is not None
    proba = model.predict_proba

    def predict_proba(batch: ModelInput) -> np.ndarray:
        if isinstance(batch, pd.DataFrame):
            return np.asarray(proba(batch))
        rows = batch.astype(np.float64, copy=False)
        if wants_frame:  # fitted on a DataFrame: pass names, or sklearn warns on every call
            return np.asarray(proba(pd.DataFrame(rows, columns=feature_names)))
        return np.asarray(proba(rows))

    return predict_proba


def typical_input(schema: FeatureSchema) -> ModelInput:
    """One typical row in the form the schema's requests are validated into (the load smoke test)."""
    instance = schema.typical_instance()
    if schema.all_numeric_required:
        return np.asarray([[instance[name] for name in schema.feature_names]], dtype=np.float64)
    return schema.to_frame([instance])


def load_version(
    client: MlflowClient,
    name: str,
    version: ModelVersion,
    alias: str,
    prefer_onnx: bool = True,
) -> ServedModel:
    """Load `models:/<name>/<version>` with ONNX Runtime when allowed, else sklearn.

    The version is loaded by number (already resolved from the alias) so the version we report
    is the one we serve even if the alias moves while we load.

    Raises:
        ModelLoadError: no feature schema in the metadata, or neither runtime can load it.
    """
    started = time.perf_counter()
    uri = f"models:/{name}/{version.version}"
    try:
        metadata = mlflow.models.get_model_info(uri).metadata or {}
    except Exception as exc:
        raise ModelLoadError(f"{uri}: cannot read model metadata: {exc}") from exc
    key = contract.METADATA_FEATURE_SCHEMA
    try:
        found = FeatureSchema.from_model_metadata(metadata)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"{uri}: invalid {key} in metadata: {exc}") from exc
    if found is None:
        raise ModelLoadError(f"{uri}: model metadata has no '{key}'; was it logged by mlstack?")
    schema = found

    runtime: InferenceRuntime = "sklearn"
    predict_proba: ProbaFn | None = None
    artifact = onnx_artifact_path(version) if prefer_onnx else None
    if artifact and version.run_id:
        try:
            with tempfile.TemporaryDirectory(prefix="mlstack-onnx-") as tmp:
                path = mlflow.artifacts.download_artifacts(
                    run_id=version.run_id,
                    artifact_path=artifact,
                    dst_path=tmp,
                    tracking_uri=client.tracking_uri,
                )
                predict_proba = onnx_predict_proba(path, schema)
            runtime = "onnx"
        except Exception as exc:  # a broken ONNX artifact must not stop serving: fall back
            log.warning("%s: ONNX artifact %r unusable (%s); serving with sklearn", uri, artifact, exc)
    if predict_proba is None:
        try:
            model = mlflow.sklearn.load_model(uri)
        except Exception as exc:
            raise ModelLoadError(f"{uri}: cannot load the sklearn model: {exc}") from exc
        predict_proba = sklearn_predict_proba(model, schema.feature_names)

    # Smoke-test with the typical row so a model that cannot predict never gets swapped in.
    try:
        probabilities = predict_proba(typical_input(schema))
    except Exception as exc:
        raise ModelLoadError(f"{uri}: test prediction with the {runtime} runtime failed: {exc}") from exc
    if probabilities.shape != (1, len(schema.classes)):
        raise ModelLoadError(
            f"{uri}: {runtime} runtime returned probabilities of shape {probabilities.shape}, "
            f"expected (1, {len(schema.classes)}) for classes {[c.name for c in schema.classes]}"
        )
    return ServedModel(
        name=name,
        version=str(version.version),
        alias=alias,
        run_id=version.run_id or "",
        runtime=runtime,
        schema=schema,
        predict_proba=predict_proba,
        loaded_at=time.time(),
        load_seconds=time.perf_counter() - started,
    )
