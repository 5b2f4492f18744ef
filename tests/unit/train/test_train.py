"""mlstack.train: estimators, metrics, ONNX parity and the runs it logs, on a file-backed MLflow.

Real scikit-learn, skl2onnx, onnxruntime and MLflow (SQLite store, artifacts in a directory); the
candidates are the two fast ones of the test config, trained once for the module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.pipeline import Pipeline

from mlstack import contract, train
from mlstack.config import CandidateConfig, Config, load_config
from mlstack.data import Dataset, Split, load_base_dataset, split
from mlstack.estimators import CandidateError, build_candidate
from mlstack.feature_types import infer_schema
from mlstack.preprocessing import MODEL_STEP, PREPROCESS_STEP
from mlstack.schema import FeatureSchema
from mlstack.state import CandidateResult
from mlstack.train import evaluate, export_onnx, reference_sample
from tests.support.mlflow_store import FileStore, file_store


@dataclass
class Trained:
    store: FileStore
    config: Config
    dataset: Dataset
    split: Split
    results: list[CandidateResult]


@pytest.fixture(scope="module")
def wine() -> tuple[Dataset, Split]:
    config = load_config(environ={})
    dataset = load_base_dataset(config.data)
    return dataset, split(dataset, config)


@pytest.fixture(scope="module")
def trained(
    _mlflow_store_template: Path, tmp_path_factory: pytest.TempPathFactory, wine: tuple[Dataset, Split]
) -> Iterator[Trained]:
    root = tmp_path_factory.mktemp("train")
    store = file_store(_mlflow_store_template, root / "mlflow")
    previous = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # whatever MLflow defaults to (./mlruns) lands here
        config = store.config()
        dataset, data_split = wine
        outcome = train.train_all(config, dataset, data_split, {contract.TAG_TRIGGER: "manual"})
        assert not outcome.failures
        try:
            yield Trained(store, config, dataset, data_split, outcome.results)
        finally:
            mlflow.set_tracking_uri(previous)


def candidate(name: str = "c", estimator: str = "LogisticRegression", **params: object) -> CandidateConfig:
    return CandidateConfig(name=name, estimator=estimator, scale=True, params=dict(params))


@pytest.fixture(scope="module")
def wine_schema(wine: tuple[Dataset, Split]) -> FeatureSchema:
    dataset, _ = wine
    return infer_schema(dataset.features, dataset.target, dataset.class_names, dataset.target_name)


def build_estimator(config: CandidateConfig, schema: FeatureSchema) -> Pipeline:
    return build_candidate(config, schema)


# --------------------------------------------------------------------------- estimators and metrics


def test_build_estimator_scales_only_when_asked(wine_schema: FeatureSchema) -> None:
    scaled = build_estimator(candidate(C=0.5, max_iter=100), wine_schema)
    assert [name for name, _ in scaled.steps] == [PREPROCESS_STEP, MODEL_STEP]
    numeric = scaled.named_steps[PREPROCESS_STEP].transformers[0][1]
    assert [name for name, _ in numeric.steps] == ["impute", "scale"]
    assert scaled.named_steps["model"].get_params()["C"] == 0.5
    plain = build_estimator(
        CandidateConfig(name="rf", estimator="RandomForestClassifier", scale=False, params={}), wine_schema
    )
    numeric = plain.named_steps[PREPROCESS_STEP].transformers[0][1]
    assert [name for name, _ in numeric.steps] == ["impute"]


def test_unknown_estimator_and_bad_params_name_the_candidate(wine_schema: FeatureSchema) -> None:
    with pytest.raises(
        CandidateError, match=r"^candidate 'x': estimator 'XGBoost': unknown estimator 'XGBoost'"
    ):
        build_estimator(candidate("x", "XGBoost"), wine_schema)
    with pytest.raises(CandidateError, match=r"^candidate 'y': bad params \{'depth': 3\}: "):
        build_estimator(candidate("y", depth=3), wine_schema)


def test_evaluate_reports_weighted_and_per_class_metrics(
    wine: tuple[Dataset, Split], wine_schema: FeatureSchema
) -> None:
    _, data = wine
    model = build_estimator(candidate(max_iter=2000), wine_schema).fit(data.x_train, data.y_train)
    metrics = evaluate(model, data.x_test, data.y_test)
    classes = sorted(pd.unique(data.y_test))
    assert set(metrics) == {"accuracy", "precision_weighted", "recall_weighted", "f1_weighted"} | {
        f"{kind}_class_{label}" for kind in ("precision", "recall", "f1") for label in classes
    }
    assert all(0.0 <= value <= 1.0 for value in metrics.values())
    assert metrics["accuracy"] == pytest.approx(float((model.predict(data.x_test) == data.y_test).mean()))


def test_evaluate_a_perfect_and_a_useless_model() -> None:
    class Constant:
        def __init__(self, answer: pd.Series) -> None:
            self.answer = answer

        def predict(self, x: pd.DataFrame) -> np.ndarray:
            return self.answer.to_numpy()

    x = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    y = pd.Series([0, 1, 1, 2])
    assert evaluate(Constant(y), x, y)["f1_weighted"] == 1.0
    wrong = evaluate(Constant(pd.Series([2, 0, 0, 1])), x, y)
    assert wrong["accuracy"] == 0.0 and wrong["f1_class_1"] == 0.0  # zero_division=0: no warning, no NaN


# --------------------------------------------------------------------------- ONNX


def test_onnx_export_passes_parity_for_a_convertible_model(
    wine: tuple[Dataset, Split], wine_schema: FeatureSchema
) -> None:
    _, data = wine
    model = build_estimator(candidate(max_iter=2000), wine_schema).fit(data.x_train, data.y_train)
    payload, status, detail = export_onnx(model, data.x_test, wine_schema, tolerance=1e-4)
    assert status == contract.ONNX_PASSED and payload is not None and len(payload) > 100
    assert detail.startswith("labels_identical=True max_probability_diff=")


def test_onnx_parity_fails_beyond_the_tolerance(
    wine: tuple[Dataset, Split], wine_schema: FeatureSchema
) -> None:
    _, data = wine
    model = build_estimator(candidate(max_iter=2000), wine_schema).fit(data.x_train, data.y_train)
    payload, status, _ = export_onnx(model, data.x_test, wine_schema, tolerance=-1.0)  # nothing is within -1
    assert status == contract.ONNX_FAILED and payload is not None  # the model is still exported


def test_onnx_conversion_failure_is_skipped_with_the_reason(
    wine: tuple[Dataset, Split], wine_schema: FeatureSchema
) -> None:
    _, data = wine
    unfitted: Pipeline = build_estimator(candidate(), wine_schema)
    payload, status, detail = export_onnx(unfitted, data.x_test, wine_schema, tolerance=1e-4)
    assert (payload, status) == (None, contract.ONNX_SKIPPED) and detail.startswith("conversion failed: ")


# --------------------------------------------------------------------------- reference sample


def test_reference_sample_is_training_rows_with_the_models_predictions(
    wine: tuple[Dataset, Split], wine_schema: FeatureSchema
) -> None:
    _, data = wine
    model = build_estimator(candidate(max_iter=2000), wine_schema).fit(data.x_train, data.y_train)
    sample = reference_sample(model, data, rows=50, seed=7)
    assert len(sample) == 50 and list(sample.columns) == [*data.x_train.columns, "prediction"]
    assert sample["prediction"].dtype.kind == "i"
    assert sample["prediction"].tolist() == model.predict(sample.drop(columns="prediction")).tolist()
    train_rows = {tuple(row) for row in data.x_train.to_numpy().tolist()}
    assert all(tuple(row) in train_rows for row in sample.drop(columns="prediction").to_numpy().tolist())
    again = reference_sample(model, data, rows=50, seed=7)
    assert again.equals(sample)  # seeded
    everything = reference_sample(model, data, rows=10_000, seed=7)
    assert len(everything) == len(data.x_train)  # capped at the training set


# --------------------------------------------------------------------------- logged runs


def test_every_candidate_is_a_run_best_first(trained: Trained) -> None:
    names = [c.name for c in trained.config.training.candidates]
    metric = trained.config.training.primary_metric
    assert sorted(r.name for r in trained.results) == sorted(names)
    scores = [r.score(metric) for r in trained.results]
    assert scores == sorted(scores, reverse=True)
    client = trained.store.client()
    experiment = client.get_experiment_by_name(trained.config.project.experiment)
    assert experiment is not None
    for result in trained.results:
        run = client.get_run(result.run_id)
        assert run.info.experiment_id == experiment.experiment_id and run.info.run_name == result.name
        assert run.data.tags[contract.TAG_CANDIDATE] == result.name
        assert run.data.tags[contract.TAG_TRIGGER] == "manual"
        assert run.data.tags[contract.TAG_ONNX_PARITY] == result.onnx_parity
        assert run.data.metrics[metric] == pytest.approx(result.metrics[metric])
        assert run.data.params["primary_metric"] == metric
        assert int(run.data.params["train_rows"]) == len(trained.split.x_train)
        assert int(run.data.params["test_rows"]) == len(trained.split.x_test)
        assert set(result.timings) == {"fit_s", "log_s", "onnx_s", "log_model_s"}


def test_each_run_logs_its_artifacts(trained: Trained) -> None:
    client = trained.store.client()
    for result in trained.results:
        logged = {a.path for a in client.list_artifacts(result.run_id)}
        logged |= {a.path for a in client.list_artifacts(result.run_id, "reference")}
        logged |= {a.path for a in client.list_artifacts(result.run_id, "onnx")}
        expected = {
            contract.EFFECTIVE_CONFIG_ARTIFACT,
            contract.FEATURE_SCHEMA_ARTIFACT,
            contract.DATASET_COMPOSITION_ARTIFACT,
            contract.CLASSIFICATION_REPORT_ARTIFACT,
            contract.CONFUSION_MATRIX_ARTIFACT,
            contract.REFERENCE_ARTIFACT,
        }
        if result.onnx_parity != contract.ONNX_SKIPPED:
            expected.add(contract.ONNX_ARTIFACT)
        assert expected <= logged, (result.name, sorted(logged))


def test_the_logged_model_loads_predicts_and_carries_its_schema(trained: Trained) -> None:
    best = trained.results[0]
    model = mlflow.sklearn.load_model(best.model_uri)
    x = trained.split.x_test
    assert evaluate(model, x, trained.split.y_test) == pytest.approx(best.metrics)
    info = mlflow.models.get_model_info(best.model_uri)
    assert info.metadata is not None
    assert info.metadata[contract.METADATA_CANDIDATE] == best.name
    schema = FeatureSchema.from_dict(info.metadata[contract.METADATA_FEATURE_SCHEMA])
    assert schema.feature_names == list(map(str, x.columns))
    assert [schema.class_name(c.label) for c in schema.classes] == trained.dataset.class_names


def test_the_logged_reference_and_config_round_trip(trained: Trained, tmp_path: Path) -> None:
    result = trained.results[0]
    reference = pd.read_parquet(
        mlflow.artifacts.download_artifacts(
            run_id=result.run_id,
            artifact_path=contract.REFERENCE_ARTIFACT,
            dst_path=str(tmp_path),
            tracking_uri=trained.store.uri,
        )
    )
    rows = min(trained.config.data.reference_sample_rows, len(trained.split.x_train))
    assert len(reference) == rows and "prediction" in reference.columns
    run = trained.store.client().get_run(result.run_id)
    text = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/{contract.EFFECTIVE_CONFIG_ARTIFACT}")
    effective = yaml.safe_load(text)  # logged as YAML: the name ends in .yaml
    assert effective == json.loads(json.dumps(trained.config.model_dump(mode="json")))


def test_write_effective_config_is_yaml_of_the_config(tmp_path: Path) -> None:
    config = load_config(environ={})
    path = tmp_path / "reports" / "config.yaml"
    train.write_effective_config(config, path)
    assert yaml.safe_load(path.read_text()) == config.model_dump(mode="json")


def test_model_requirements_pin_what_unpickling_needs() -> None:
    import cloudpickle
    import sklearn

    assert train.model_requirements() == [
        f"scikit-learn=={sklearn.__version__}",
        f"cloudpickle=={cloudpickle.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
    ]
