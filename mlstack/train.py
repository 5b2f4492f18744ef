"""The train stage: fit every candidate, evaluate it, export it to ONNX and log it all to MLflow."""

from __future__ import annotations

import importlib.metadata
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
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    accuracy_score,
    classification_report,
    confusion_matrix,
    precision_recall_fscore_support,
)
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from mlstack import contract
from mlstack.config import CandidateConfig, Config
from mlstack.contract import MODEL_ARTIFACT, ONNX_ARTIFACT, REFERENCE_ARTIFACT, OnnxParity
from mlstack.data import Dataset, Split
from mlstack.estimators import CandidateError, build_candidate
from mlstack.feature_types import infer_schema
from mlstack.preprocessing import onnx_feeds, onnx_initial_types, onnx_ready_copy, register_onnx_converters
from mlstack.schema import UNKNOWN_ERROR, FeatureSchema, FeatureSpec
from mlstack.state import CandidateResult

log = logging.getLogger(__name__)
# cloudpickle is chosen on purpose (skops refuses untrusted tree types on load); the models we load
# are the ones this pipeline logged to our own registry.
warnings.filterwarnings("ignore", message="Saving scikit-learn models in the pickle or cloudpickle format")

# The ONNX opsets conversions target (ai.onnx.ml 3: tree ensembles of LightGBM and scikit-learn alike).
ONNX_OPSETS = {"": 17, "ai.onnx.ml": 3}
REASON_CHARS = 300  # a conversion error is recorded up to this length (a run tag; MLflow allows 5000)
UNSEEN_CATEGORY = "__mlstack_unseen_category__"  # probes how a fitted pipeline treats unknown categories


@dataclass
class TrainingOutcome:
    """The candidates that trained (best first) and those that failed, with their errors."""

    results: list[CandidateResult]
    failures: dict[str, str] = field(default_factory=dict)


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
    model: Pipeline, x_test: pd.DataFrame, schema: FeatureSchema, tolerance: float
) -> tuple[bytes | None, OnnxParity, str]:
    """Convert a fitted candidate to ONNX and check its parity with sklearn on the test set.

    Returns:
        (serialized model or None, "passed"|"failed"|"skipped", why): the reason is what the
        predictor's choice of runtime rests on, so it is recorded with the run.
    """
    try:
        import onnxruntime as ort
        from skl2onnx import convert_sklearn
    except ImportError as exc:  # pragma: no cover - both are in the lock
        return None, contract.ONNX_SKIPPED, f"onnx tooling missing: {exc}"
    register_onnx_converters()
    try:
        onx = convert_sklearn(
            onnx_ready_copy(model, schema),
            initial_types=onnx_initial_types(schema),
            options={"zipmap": False},
            target_opset=ONNX_OPSETS,
        )
        payload = onx.SerializeToString()
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1  # a parity check, not a benchmark
        session = ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])
        labels, probabilities = session.run(None, onnx_feeds(x_test, schema))
    except Exception as exc:  # conversion support varies by estimator
        return None, contract.ONNX_SKIPPED, f"conversion failed: {_first_line(exc)}"
    same_labels = bool(np.array_equal(np.asarray(labels).ravel(), model.predict(x_test)))
    max_diff = float(np.max(np.abs(np.asarray(probabilities) - model.predict_proba(x_test))))
    status = contract.ONNX_PASSED if same_labels and max_diff <= tolerance else contract.ONNX_FAILED
    detail = f"labels_identical={same_labels} max_probability_diff={max_diff:.3g}"
    if status == contract.ONNX_FAILED:
        detail = f"parity failed (tolerance {tolerance:g}): {detail}"
    return payload, status, detail


def _first_line(exc: BaseException) -> str:
    """A one-line reason: the error's first line (short), and its root cause when it has one."""

    def line(error: BaseException, limit: int) -> str:
        lines = [text.strip() for text in str(error).splitlines() if text.strip()]
        text = f"{type(error).__name__}: {lines[0] if lines else ''}"
        return text if len(text) <= limit else text[: limit - 3] + "..."

    root = exc
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    if root is exc:
        return line(exc, REASON_CHARS)
    return f"{line(exc, REASON_CHARS // 2)} (caused by {line(root, REASON_CHARS // 2)})"


def served_schema(model: Any, schema: FeatureSchema, x_sample: pd.DataFrame) -> FeatureSchema:
    """The schema as this fitted model serves it: open categorical columns it cannot take an unseen
    category in (a factory's own encoder, say) are closed, so the predictor answers 422 rather than 500.
    """
    row = x_sample.head(1)
    specs = []
    for spec in schema.features:
        if spec.is_categorical and spec.unknown != UNKNOWN_ERROR and len(row):
            probe = row.copy()
            probe[spec.name] = UNSEEN_CATEGORY
            try:
                model.predict_proba(probe)
            except Exception as exc:
                log.info(
                    "%s: the model refuses unseen categories (%s); closing its vocabulary", spec.name, exc
                )
                spec = FeatureSpec(
                    name=spec.name,
                    typical=spec.typical,
                    kind=spec.kind,
                    categories=spec.categories,
                    nullable=spec.nullable,
                    unknown=UNKNOWN_ERROR,
                )
        specs.append(spec)
    return FeatureSchema(tuple(specs), schema.classes, schema.target, schema.id_column)


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


def reference_rows(
    split: Split, rows: int, seed: int, mode: str = "recent", observed_at: pd.Series | None = None
) -> pd.Index:
    """Which training rows make the drift reference (`data.reference`).

    `recent`: the newest `rows` training rows by the time they were observed (feedback rows carry
    their prediction's time), filled up with a seeded sample of the untimed base rows when fewer are
    timed. After a retrain on drifted feedback the reference is the drifted distribution the model
    now stands for, so the live window stops looking drifted once the model has adapted. `random`: a
    seeded sample of all training rows, mostly the base data for as long as it dominates.
    """
    train = split.x_train.index
    wanted = min(rows, len(train))
    observed = observed_at
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
    model: Any,
    split: Split,
    rows: int,
    seed: int,
    mode: str = "recent",
    observed_at: pd.Series | None = None,
) -> pd.DataFrame:
    """The drift reference: training rows (`reference_rows`) plus the model's predictions on them.

    `observed_at`: when each row of the dataset was observed (`Dataset.observed_at`); without it,
    every mode samples all training rows.
    """
    sample = split.x_train.loc[reference_rows(split, rows, seed, mode, observed_at)]
    return sample.assign(prediction=model.predict(sample).astype(int)).reset_index(drop=True)


def train_candidate(
    candidate: CandidateConfig,
    config: Config,
    dataset: Dataset,
    split: Split,
    schema: FeatureSchema,
    tags: dict[str, str],
) -> CandidateResult:
    """Build, fit, evaluate, export and log one candidate as its own MLflow run.

    `split` holds model frames (typed by `schema`). Any error ends the run as FAILED with the
    error in its `error` tag, and is raised as it came.
    """
    with mlflow.start_run(
        run_name=candidate.name, tags={**tags, contract.TAG_CANDIDATE: candidate.name}
    ) as run:
        try:
            return _train_in_run(run.info.run_id, candidate, config, dataset, split, schema)
        except Exception as exc:
            mlflow.set_tag(contract.TAG_ERROR, f"{type(exc).__name__}: {exc}"[:4000])
            raise


def _train_in_run(
    run_id: str,
    candidate: CandidateConfig,
    config: Config,
    dataset: Dataset,
    split: Split,
    schema: FeatureSchema,
) -> CandidateResult:
    timings: dict[str, float] = {}
    mlflow.log_params({"estimator": candidate.estimator, "scale": candidate.scale})
    mlflow.log_params({f"param.{k}": v for k, v in candidate.params.items()})
    model = build_candidate(candidate, schema, config.training.code_dirs)
    started = time.perf_counter()
    with warnings.catch_warnings(), threadpool_limits(config.training.threads):
        # sklearn 1.9 deprecates SVC(probability=True); it still works and converts to ONNX.
        warnings.simplefilter("ignore", FutureWarning)
        model.fit(split.x_train, split.y_train)
        timings["fit_s"] = time.perf_counter() - started
        metrics = evaluate(model, split.x_test, split.y_test)
        predicted = model.predict(split.x_test)
        schema = served_schema(model, schema, split.x_test)

    started = time.perf_counter()
    mlflow.log_params(
        {
            "primary_metric": config.training.primary_metric,
            "test_size": config.data.test_size,
            "seed": config.data.seed,
            "train_rows": len(split.x_train),
            "test_rows": len(split.x_test),
            "numeric_features": len(schema.numeric_names),
            "categorical_features": len(schema.categorical_names),
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
            labels=[c.label for c in schema.classes],
            target_names=[c.name for c in schema.classes],
            zero_division=0,
        ),
        contract.CLASSIFICATION_REPORT_ARTIFACT,
    )
    mlflow.log_image(
        _png_to_array(_confusion_png(split.y_test, predicted, dataset.class_names)),
        contract.CONFUSION_MATRIX_ARTIFACT,
    )
    reference = reference_sample(
        model,
        split,
        config.data.reference_sample_rows,
        config.data.seed,
        config.data.reference,
        dataset.observed_at,
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(REFERENCE_ARTIFACT).name
        reference.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=str(Path(REFERENCE_ARTIFACT).parent))
    timings["log_s"] = time.perf_counter() - started

    started = time.perf_counter()
    parity: OnnxParity = contract.ONNX_SKIPPED
    detail = "disabled in config (training.onnx.enabled: false)"
    if config.training.onnx.enabled:
        payload, parity, detail = export_onnx(
            model, split.x_test, schema, config.training.onnx.probability_tolerance
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
        pip_requirements=model_requirements(model),
    )
    timings["log_model_s"] = time.perf_counter() - started
    log.info(
        "trained %s: %s=%.4f (onnx %s)",
        candidate.name,
        config.training.primary_metric,
        metrics[config.training.primary_metric],
        parity,
    )
    return CandidateResult(candidate.name, run_id, info.model_uri, metrics, parity, timings, detail)


def model_requirements(model: Any = None) -> list[str]:
    """Pinned runtime requirements of a logged model: what unpickling it needs.

    Beyond scikit-learn and its companions, the distribution of every estimator library the
    fitted pipeline uses (LightGBM, say) is pinned at its installed version.
    """
    import cloudpickle
    import sklearn

    pinned = {
        "scikit-learn": sklearn.__version__,
        "cloudpickle": cloudpickle.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }
    for distribution in _estimator_distributions(model) if model is not None else []:
        pinned.setdefault(distribution, importlib.metadata.version(distribution))
    return [f"{name}=={version}" for name, version in pinned.items()]


def _estimator_distributions(model: Any) -> list[str]:
    """The installed distributions whose classes appear among a pipeline's steps (not sklearn's own)."""
    found: list[str] = []
    distributions = importlib.metadata.packages_distributions()
    for step in _steps(model):
        top = type(step).__module__.split(".")[0]
        for name in distributions.get(top, []):
            if name not in found and name not in ("scikit-learn", "mlstack"):
                found.append(name)
    return found


def _steps(model: Any) -> list[Any]:
    """Every estimator inside a Pipeline / ColumnTransformer tree, the model itself included."""
    found = [model]
    for attribute in ("steps", "transformers"):
        for item in getattr(model, attribute, None) or []:
            found += _steps(item[1])
    return found


def _png_to_array(png: bytes) -> np.ndarray:
    return plt.imread(io.BytesIO(png), format="png")


def train_all(config: Config, dataset: Dataset, split: Split, tags: dict[str, str]) -> TrainingOutcome:
    """Train every configured candidate; the best comes first (by the primary metric).

    A candidate that cannot be built or trained (a bad dotted path, a factory that raises) fails
    alone: its error is logged, its MLflow run ends FAILED, and the other candidates train.

    Raises:
        RuntimeError: every candidate failed (the message lists each one's error).
    """
    mlflow.set_tracking_uri(config.mlflow.tracking_uri)
    mlflow.set_experiment(config.project.experiment)
    schema = infer_schema(
        dataset.features, dataset.target, dataset.class_names, dataset.target_name, config.data
    )
    typed = Split(
        schema.model_frame(split.x_train), schema.model_frame(split.x_test), split.y_train, split.y_test
    )
    results: list[CandidateResult] = []
    failures: dict[str, str] = {}
    for candidate in config.training.candidates:
        try:
            results.append(train_candidate(candidate, config, dataset, typed, schema, tags))
        except Exception as exc:
            message = str(exc) if isinstance(exc, CandidateError) else f"{type(exc).__name__}: {exc}"
            failures[candidate.name] = message
            log.error("candidate %s failed: %s", candidate.name, message)
    if not results:
        raise RuntimeError(
            "every candidate failed: " + "; ".join(f"{name}: {error}" for name, error in failures.items())
        )
    metric = config.training.primary_metric
    return TrainingOutcome(sorted(results, key=lambda r: r.score(metric), reverse=True), failures)


def write_effective_config(config: Config, path: Path) -> None:
    """Write the effective config next to the reports, as YAML."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
