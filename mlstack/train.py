"""The train stage: fit every candidate, evaluate it, export it to ONNX and log it all to MLflow."""

from __future__ import annotations

import io
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import yaml
from mlflow.models import infer_signature
from sklearn.base import ClassifierMixin
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    accuracy_score,
    classification_report,
    confusion_matrix,
    precision_recall_fscore_support,
)
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from mlstack import contract
from mlstack.config import CandidateConfig, Config
from mlstack.contract import MODEL_ARTIFACT, ONNX_ARTIFACT, REFERENCE_ARTIFACT, OnnxParity
from mlstack.data import Dataset, Split
from mlstack.schema import FeatureSchema

log = logging.getLogger(__name__)
# cloudpickle is chosen on purpose (skops refuses untrusted tree types on load); the models we load
# are the ones this pipeline logged to our own registry.
warnings.filterwarnings("ignore", message="Saving scikit-learn models in the pickle or cloudpickle format")

ESTIMATORS: dict[str, type[ClassifierMixin]] = {
    "RandomForestClassifier": RandomForestClassifier,
    "GradientBoostingClassifier": GradientBoostingClassifier,
    "SVC": SVC,
    "KNeighborsClassifier": KNeighborsClassifier,
    "LogisticRegression": LogisticRegression,
}


@dataclass
class CandidateResult:
    """One trained candidate and where it lives in MLflow."""

    name: str
    run_id: str
    model_uri: str
    metrics: dict[str, float]
    onnx_parity: OnnxParity
    timings: dict[str, float] = field(default_factory=dict)

    def score(self, metric: str) -> float:
        return self.metrics[metric]


def build_estimator(candidate: CandidateConfig) -> Pipeline:
    """A sklearn Pipeline for a candidate, with scaling when the config asks for it."""
    try:
        estimator_cls = ESTIMATORS[candidate.estimator]
    except KeyError:
        raise ValueError(
            f"candidate {candidate.name!r}: unknown estimator {candidate.estimator!r}; "
            f"known: {sorted(ESTIMATORS)}"
        ) from None
    try:
        estimator = estimator_cls(**candidate.params)
    except TypeError as exc:
        raise ValueError(f"candidate {candidate.name!r}: bad params {candidate.params}: {exc}") from None
    steps: list[tuple[str, Any]] = [("scaler", StandardScaler())] if candidate.scale else []
    steps.append(("model", estimator))
    return Pipeline(steps)


def evaluate(model: Any, x: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    """Weighted accuracy/precision/recall/F1 and per-class metrics on one data set."""
    predicted = model.predict(x)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, predicted, average="weighted", zero_division=0
    )
    metrics = {
        "accuracy": float(accuracy_score(y, predicted)),
        "precision_weighted": float(precision),
        "recall_weighted": float(recall),
        "f1_weighted": float(f1),
    }
    labels = sorted(pd.unique(y))
    per_p, per_r, per_f, _ = precision_recall_fscore_support(
        y, predicted, labels=labels, average=None, zero_division=0
    )
    for label, p, r, f in zip(labels, per_p, per_r, per_f, strict=True):
        metrics[f"precision_class_{label}"] = float(p)
        metrics[f"recall_class_{label}"] = float(r)
        metrics[f"f1_class_{label}"] = float(f)
    return metrics


def export_onnx(
    model: Pipeline, x_test: pd.DataFrame, tolerance: float
) -> tuple[bytes | None, OnnxParity, str]:
    """Convert to ONNX and check parity on the test set.

    Returns:
        (serialized model or None, "passed"|"failed"|"skipped", detail)
    """
    try:
        import onnxruntime as ort
        from skl2onnx import to_onnx
    except ImportError as exc:  # pragma: no cover - both are in the lock
        return None, contract.ONNX_SKIPPED, f"onnx tooling missing: {exc}"
    sample = x_test.to_numpy(dtype=np.float32)
    try:
        onx = to_onnx(model, sample[:1], options={"zipmap": False}, target_opset=17)
        payload = onx.SerializeToString()
        session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
        labels, probabilities = session.run(None, {session.get_inputs()[0].name: sample})
    except Exception as exc:  # conversion support varies by estimator
        return None, contract.ONNX_SKIPPED, f"conversion failed: {exc}"
    same_labels = bool(np.array_equal(np.asarray(labels), model.predict(x_test)))
    max_diff = float(np.max(np.abs(np.asarray(probabilities) - model.predict_proba(x_test))))
    status = contract.ONNX_PASSED if same_labels and max_diff <= tolerance else contract.ONNX_FAILED
    return payload, status, f"labels_identical={same_labels} max_probability_diff={max_diff:.3g}"


def _confusion_png(y: pd.Series, predicted: np.ndarray, class_names: list[str]) -> bytes:
    labels = sorted(pd.unique(y))
    matrix = confusion_matrix(y, predicted, labels=labels)
    fig, ax = plt.subplots(figsize=(5, 4))
    ConfusionMatrixDisplay(matrix, display_labels=[class_names[i] for i in labels]).plot(
        ax=ax, colorbar=False
    )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def reference_rows(dataset: Dataset, split: Split, rows: int, seed: int, mode: str) -> pd.Index:
    """Which training rows make the drift reference (`data.reference`).

    `recent`: the newest `rows` training rows by the time they were observed (feedback rows carry
    their prediction's time), filled up with a seeded sample of the untimed base rows when fewer are
    timed. After a retrain on drifted feedback the reference is the drifted distribution the model
    now stands for, so the live window stops looking drifted once the model has adapted. `random`: a
    seeded sample of all training rows, mostly the base data for as long as it dominates.
    """
    train = split.x_train.index
    wanted = min(rows, len(train))
    observed = dataset.observed_at
    if mode == "random" or observed is None or observed.loc[train].isna().all():
        return split.x_train.sample(n=wanted, random_state=seed).index
    times = observed.loc[train]
    timed = times.dropna().sort_values(kind="stable")
    newest = timed.index[len(timed) - min(wanted, len(timed)) :]
    missing = wanted - len(newest)
    untimed = split.x_train.loc[times.index[times.isna()]]
    filler = untimed.sample(n=missing, random_state=seed).index if missing > 0 else untimed.index[:0]
    return filler.append(newest)


def reference_sample(
    model: Any, dataset: Dataset, split: Split, rows: int, seed: int, mode: str = "recent"
) -> pd.DataFrame:
    """The drift reference: training rows (`reference_rows`) plus the model's predictions on them."""
    sample = split.x_train.loc[reference_rows(dataset, split, rows, seed, mode)]
    return sample.assign(prediction=model.predict(sample).astype(int)).reset_index(drop=True)


def train_candidate(
    candidate: CandidateConfig,
    config: Config,
    dataset: Dataset,
    split: Split,
    schema: FeatureSchema,
    tags: dict[str, str],
) -> CandidateResult:
    """Fit, evaluate, export and log one candidate as its own MLflow run."""
    timings: dict[str, float] = {}
    model = build_estimator(candidate)
    with mlflow.start_run(
        run_name=candidate.name, tags={**tags, contract.TAG_CANDIDATE: candidate.name}
    ) as run:
        started = time.perf_counter()
        with warnings.catch_warnings():
            # sklearn 1.9 deprecates SVC(probability=True); it still works and converts to ONNX.
            warnings.simplefilter("ignore", FutureWarning)
            model.fit(split.x_train, split.y_train)
        timings["fit_s"] = time.perf_counter() - started
        metrics = evaluate(model, split.x_test, split.y_test)
        predicted = model.predict(split.x_test)

        started = time.perf_counter()
        mlflow.log_params({"estimator": candidate.estimator, "scale": candidate.scale})
        mlflow.log_params({f"param.{k}": v for k, v in candidate.params.items()})
        mlflow.log_params(
            {
                "primary_metric": config.training.primary_metric,
                "test_size": config.data.test_size,
                "seed": config.data.seed,
                "train_rows": len(split.x_train),
                "test_rows": len(split.x_test),
                "drift_reference": config.data.reference,
            }
        )
        mlflow.log_metrics(metrics)
        mlflow.log_metrics(
            {
                metric: float(str(dataset.composition[key]))
                for key, metric in (
                    (contract.COMPOSITION_FEEDBACK_USED, contract.RUN_METRIC_FEEDBACK_USED),
                    (contract.COMPOSITION_FEEDBACK_EXCLUDED, contract.RUN_METRIC_FEEDBACK_EXCLUDED),
                )
                if key in dataset.composition
            }
        )
        mlflow.log_dict(config.model_dump(mode="json"), contract.EFFECTIVE_CONFIG_ARTIFACT)
        mlflow.log_dict(schema.to_dict(), contract.FEATURE_SCHEMA_ARTIFACT)
        mlflow.log_dict(dataset.composition, contract.DATASET_COMPOSITION_ARTIFACT)
        mlflow.log_text(
            classification_report(
                split.y_test,
                predicted,
                target_names=[schema.class_name(c.label) for c in schema.classes],
                zero_division=0,
            ),
            contract.CLASSIFICATION_REPORT_ARTIFACT,
        )
        mlflow.log_image(
            _png_to_array(_confusion_png(split.y_test, predicted, dataset.class_names)),
            contract.CONFUSION_MATRIX_ARTIFACT,
        )
        reference = reference_sample(
            model, dataset, split, config.data.reference_sample_rows, config.data.seed, config.data.reference
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(REFERENCE_ARTIFACT).name
            reference.to_parquet(path, index=False)
            mlflow.log_artifact(str(path), artifact_path=str(Path(REFERENCE_ARTIFACT).parent))
        timings["log_s"] = time.perf_counter() - started

        started = time.perf_counter()
        parity: OnnxParity = contract.ONNX_SKIPPED
        detail = "disabled in config"
        if config.training.onnx.enabled:
            payload, parity, detail = export_onnx(
                model, split.x_test, config.training.onnx.probability_tolerance
            )
            if payload is not None:
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / Path(ONNX_ARTIFACT).name
                    path.write_bytes(payload)
                    mlflow.log_artifact(str(path), artifact_path=str(Path(ONNX_ARTIFACT).parent))
        mlflow.set_tags({contract.TAG_ONNX_PARITY: parity, contract.TAG_ONNX_DETAIL: detail})
        timings["onnx_s"] = time.perf_counter() - started

        started = time.perf_counter()
        example = split.x_train.head(3)
        info = mlflow.sklearn.log_model(
            model,
            name=MODEL_ARTIFACT,
            serialization_format="cloudpickle",  # skops would refuse to load tree models untrusted
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            metadata={
                contract.METADATA_FEATURE_SCHEMA: schema.to_dict(),
                contract.METADATA_CANDIDATE: candidate.name,
            },
            # Explicit requirements: MLflow's inference re-imports the model in a subprocess (~4 s each).
            pip_requirements=model_requirements(),
        )
        timings["log_model_s"] = time.perf_counter() - started
        log.info(
            "trained %s: %s=%.4f (onnx %s)",
            candidate.name,
            config.training.primary_metric,
            metrics[config.training.primary_metric],
            parity,
        )
        return CandidateResult(candidate.name, run.info.run_id, info.model_uri, metrics, parity, timings)


def model_requirements() -> list[str]:
    """Pinned runtime requirements of a logged model: what unpickling it needs."""
    import cloudpickle
    import sklearn

    return [
        f"scikit-learn=={sklearn.__version__}",
        f"cloudpickle=={cloudpickle.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
    ]


def _png_to_array(png: bytes) -> np.ndarray:
    return plt.imread(io.BytesIO(png), format="png")


def train_all(config: Config, dataset: Dataset, split: Split, tags: dict[str, str]) -> list[CandidateResult]:
    """Train every configured candidate; the best comes first (by the primary metric)."""
    mlflow.set_tracking_uri(config.mlflow.tracking_uri)
    mlflow.set_experiment(config.project.experiment)
    schema = FeatureSchema.from_training_data(
        dataset.features, dataset.target, dataset.class_names, dataset.target_name
    )
    results = [train_candidate(c, config, dataset, split, schema, tags) for c in config.training.candidates]
    metric = config.training.primary_metric
    return sorted(results, key=lambda r: r.score(metric), reverse=True)


def write_effective_config(config: Config, path: Path) -> None:
    """Write the effective config next to the reports, as YAML."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
