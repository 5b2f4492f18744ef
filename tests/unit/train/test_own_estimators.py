"""Your own estimator: dotted-path classes, factories in model-training/, LightGBM, and failing candidates.

Real training on the committed mixed-type fixture (tests/fixtures/customers.csv) against a
file-backed MLflow (SQLite + artifact directory); ONNX export and parity with the real skl2onnx
and onnxruntime.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from mlstack import contract
from mlstack.config import REPO_ROOT, CandidateConfig, Config, load_config
from mlstack.data import Dataset, Split, load_base_dataset, split
from mlstack.estimators import CandidateError, build_candidate, import_object
from mlstack.feature_types import infer_schema
from mlstack.preprocessing import PREPROCESS_STEP
from mlstack.schema import FeatureSchema
from mlstack.train import TrainingOutcome, export_onnx, served_schema, train_all
from tests.support.binaries import lightgbm_load_error, skip_or_fail
from tests.support.mlflow_store import FileStore, file_store

EXAMPLE = REPO_ROOT / "model-training" / "examples" / "customers.yaml"


def example_config(store: FileStore | None = None, candidates: list[dict[str, Any]] | None = None) -> Config:
    overrides: dict[str, Any] = {}
    if store is not None:
        overrides.update({"mlflow.tracking_uri": store.uri, "services.state_dir": str(store.root / "state")})
    if candidates is not None:
        overrides["training.candidates"] = candidates
    config = load_config(EXAMPLE, overrides=overrides, environ={})
    if store is not None:
        store.experiment(config.project.experiment)
    return config


@dataclass
class Customers:
    config: Config
    dataset: Dataset
    schema: FeatureSchema
    split: Split  # typed by the schema

    def fit(self, candidate: CandidateConfig) -> Pipeline:
        model = build_candidate(candidate, self.schema, self.config.training.code_dirs)
        return model.fit(self.split.x_train, self.split.y_train)


@pytest.fixture(scope="module")
def customers() -> Customers:
    config = example_config()
    dataset = load_base_dataset(config.data)
    schema = infer_schema(dataset.features, dataset.target, dataset.class_names, "outcome", config.data)
    raw = split(dataset, config)
    typed = Split(schema.model_frame(raw.x_train), schema.model_frame(raw.x_test), raw.y_train, raw.y_test)
    return Customers(config, dataset, schema, typed)


def candidate(name: str, estimator: str, scale: bool = True, **params: Any) -> CandidateConfig:
    return CandidateConfig(name=name, estimator=estimator, scale=scale, params=params)


def with_unseen_and_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """Test rows plus gaps in every nullable column and an unseen category in every open one."""
    rows = frame.copy()
    rows.loc[rows.index[:5], ["region", "signup_channel", "monthly_spend", "satisfaction"]] = np.nan
    rows.loc[rows.index[5:10], "device"] = "smart-tv"
    rows.loc[rows.index[10:15], "region"] = "offshore"
    return rows


# --------------------------------------------------------------------------- building candidates


def test_a_builtin_and_a_dotted_path_class_start_with_the_schemas_column_transformer(
    customers: Customers,
) -> None:
    for estimator in (
        "LogisticRegression",
        "sklearn.linear_model.LogisticRegression",
        "sklearn.linear_model:LogisticRegression",
    ):
        model = build_candidate(candidate("lr", estimator, C=0.3), customers.schema)
        preprocess = model.steps[0][1]
        assert model.steps[0][0] == PREPROCESS_STEP and model.named_steps["model"].C == 0.3
        columns = {name: list(cols) for name, _, cols in preprocess.transformers}
        assert columns["numeric"] == customers.schema.numeric_names
        assert sorted(columns["categorical"] + columns["categorical_closed"]) == sorted(
            customers.schema.categorical_names
        )
        assert columns["categorical_closed"] == ["plan"]  # its categories are declared in the config


def test_a_factory_gets_the_schema_and_params(customers: Customers) -> None:
    model = build_candidate(
        candidate("log", "team_models.factories.log_numeric_logistic", log_columns=["monthly_spend"], C=0.25),
        customers.schema,
        customers.config.training.code_dirs,
    )
    names = [name for name, _, _ in model.steps[0][1].transformers]
    assert names[:2] == ["log_numeric", "numeric"] and model.named_steps["model"].C == 0.25


FACTORY = "team_models.factories.log_numeric_logistic"
BROKEN = [
    (
        "no_such_package.Model",
        {},
        r"cannot import 'no_such_package.Model': No module named 'no_such_package'",
    ),
    ("sklearn.ensemble.NoSuchForest", {}, r"'sklearn.ensemble' has no attribute 'NoSuchForest'"),
    ("XGBoost", {}, r"unknown estimator 'XGBoost': not a built-in"),
    ("sklearn.linear_model.LogisticRegression", {"depth": 3}, r"bad params \{'depth': 3\}"),
    ("sklearn.preprocessing.StandardScaler", {}, r"is not a classifier with predict_proba"),
    ("sklearn.svm.SVC", {}, r"is not a classifier with predict_proba"),  # probability=False
    (
        FACTORY,
        {"log_columns": ["plan"]},
        rf"factory {FACTORY} failed: ValueError: log_columns \['plan'\] are not",
    ),
    (FACTORY, {"colour": "red"}, r"failed: TypeError: .*unexpected keyword argument 'colour'"),
    ("numpy.ones", {}, r"factory numpy.ones failed"),
    ("builtins.repr", {}, r"factory builtins.repr returned str, not a sklearn Pipeline"),
]


@pytest.mark.parametrize(("estimator", "params", "message"), BROKEN)
def test_a_broken_candidate_is_named_with_its_error(
    customers: Customers, estimator: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(CandidateError, match=rf"^candidate 'broken': .*{message}"):
        build_candidate(
            candidate("broken", estimator, **params), customers.schema, customers.config.training.code_dirs
        )


def test_a_factory_must_start_with_a_column_transformer(customers: Customers) -> None:
    with pytest.raises(CandidateError, match="must start with a ColumnTransformer"):
        build_candidate(
            candidate("raw", "tests.unit.train.test_own_estimators.scaler_first"), customers.schema
        )


def scaler_first(schema: FeatureSchema) -> Pipeline:
    """A factory that forgets the schema's preprocessing (refused)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])


def test_import_object_does_not_hide_an_import_error_inside_the_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "team_broken.py").write_text("import not_installed_dependency\nclass Model: ...\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="not_installed_dependency"):
        import_object("team_broken.Model")


# --------------------------------------------------------------------------- ONNX for mixed inputs


@pytest.mark.parametrize(
    ("estimator", "scale"),
    [
        ("LogisticRegression", True),
        ("RandomForestClassifier", False),
        ("GradientBoostingClassifier", False),
        ("KNeighborsClassifier", True),
        ("sklearn.ensemble.ExtraTreesClassifier", False),
        ("team_models.factories.log_numeric_logistic", True),
    ],
)
def test_onnx_covers_string_inputs_gaps_and_unseen_categories(
    customers: Customers, estimator: str, scale: bool
) -> None:
    params = (
        {"random_state": 0} if "Tree" in estimator or "Forest" in estimator or "Boosting" in estimator else {}
    )
    model = customers.fit(candidate("c", estimator, scale, **params))
    rows = with_unseen_and_missing(customers.split.x_test)
    payload, status, detail = export_onnx(model, rows, customers.schema, tolerance=1e-4)
    assert status == contract.ONNX_PASSED, detail
    assert payload is not None and detail.startswith("labels_identical=True")


def test_without_a_converter_the_reason_is_recorded(customers: Customers) -> None:
    model = customers.fit(candidate("ls", "sklearn.semi_supervised.LabelSpreading", max_iter=100))
    payload, status, detail = export_onnx(model, customers.split.x_test, customers.schema, tolerance=1e-4)
    assert (payload, status) == (None, contract.ONNX_SKIPPED)
    assert detail.startswith("conversion failed: MissingShapeCalculator: Unable to find a shape calculator")
    assert "LabelSpreading" in detail and len(detail) < 400


def test_the_served_schema_closes_what_the_model_cannot_take(customers: Customers) -> None:
    open_model = customers.fit(candidate("lr", "LogisticRegression"))
    served = served_schema(open_model, customers.schema, customers.split.x_test)
    assert served.feature("device").unknown == "ignore" and served.feature("plan").unknown == "error"
    strict = customers.fit(candidate("strict", "tests.unit.train.test_own_estimators.refuses_unknowns"))
    served = served_schema(strict, customers.schema, customers.split.x_test)
    assert {f.name for f in served.features if f.unknown == "error"} == set(
        customers.schema.categorical_names
    )


def refuses_unknowns(schema: FeatureSchema) -> Pipeline:
    """A factory whose own encoder refuses unseen categories in every categorical column."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    encode = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="?")),
            ("onehot", OneHotEncoder(handle_unknown="error")),
        ]
    )
    numbers = SimpleImputer(strategy="median")
    preprocess = ColumnTransformer(
        [("n", numbers, schema.numeric_names), ("c", encode, schema.categorical_names)]
    )
    return Pipeline([("preprocess", preprocess), ("model", LogisticRegression(max_iter=2000))])


# --------------------------------------------------------------------------- train_all: runs, failures, code


@pytest.fixture(scope="module")
def trained(
    _mlflow_store_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FileStore, Config, TrainingOutcome]]:
    root = tmp_path_factory.mktemp("own-estimators")
    store = file_store(_mlflow_store_template, root / "mlflow")
    config = example_config(
        store,
        candidates=[
            {"name": "extra_trees", "estimator": "sklearn.ensemble.ExtraTreesClassifier", "scale": False,
             "params": {"n_estimators": 50, "random_state": 0}},
            {"name": "log_logistic", "estimator": "team_models.factories.log_numeric_logistic",
             "params": {"log_columns": ["monthly_spend", "support_tickets"], "C": 0.5}},
            {"name": "typo", "estimator": "sklearn.ensemble.RandomForrestClassifier"},
            {"name": "bad_factory", "estimator": "team_models.factories.log_numeric_logistic",
             "params": {"log_columns": ["device"]}},
        ],
    )  # fmt: skip
    previous = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        dataset = load_base_dataset(config.data)
        outcome = train_all(config, dataset, split(dataset, config), {contract.TAG_TRIGGER: "manual"})
        try:
            yield store, config, outcome
        finally:
            mlflow.set_tracking_uri(previous)


def test_a_broken_candidate_fails_alone(trained: tuple[FileStore, Config, TrainingOutcome]) -> None:
    store, config, outcome = trained
    assert sorted(r.name for r in outcome.results) == ["extra_trees", "log_logistic"]
    assert outcome.failures == {
        "typo": "candidate 'typo': estimator 'sklearn.ensemble.RandomForrestClassifier': cannot import "
        "'sklearn.ensemble.RandomForrestClassifier': "
        "'sklearn.ensemble' has no attribute 'RandomForrestClassifier'",
        "bad_factory": "candidate 'bad_factory': factory team_models.factories.log_numeric_logistic failed: "
        "ValueError: log_columns ['device'] are not numeric features (numeric: "
        "['tenure_months', 'monthly_spend', 'support_tickets', 'satisfaction'])",
    }
    client = store.client()
    experiment = client.get_experiment_by_name(config.project.experiment)
    assert experiment is not None
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    for name in ("typo", "bad_factory"):
        assert runs[name].info.status == "FAILED"
        assert runs[name].data.tags[contract.TAG_ERROR].startswith(f"CandidateError: candidate '{name}'")
    for result in outcome.results:
        assert runs[result.name].info.status == "FINISHED" and result.onnx_parity == contract.ONNX_PASSED
        assert runs[result.name].data.tags[contract.TAG_ONNX_DETAIL] == result.onnx_detail


def test_every_candidate_failing_fails_training(
    _mlflow_store_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = file_store(_mlflow_store_template, tmp_path / "mlflow")
    config = example_config(
        store, candidates=[{"name": "a", "estimator": "nope.A"}, {"name": "b", "estimator": "nope.B"}]
    )
    monkeypatch.chdir(tmp_path)
    dataset = load_base_dataset(config.data)
    with pytest.raises(
        RuntimeError, match=r"^every candidate failed: a: candidate 'a': .*; b: candidate 'b': "
    ):
        train_all(config, dataset, split(dataset, config), {})


def test_the_factory_model_serves_without_the_model_training_code(
    trained: tuple[FileStore, Config, TrainingOutcome], tmp_path: Path
) -> None:
    """Code from model-training/ is pickled by value: a process without it on sys.path loads the model."""
    store, _, outcome = trained
    result = next(r for r in outcome.results if r.name == "log_logistic")
    mlflow.set_tracking_uri(store.uri)  # another test may have trained against its own store since
    info = mlflow.models.get_model_info(result.model_uri)
    schema = FeatureSchema.from_dict(info.metadata[contract.METADATA_FEATURE_SCHEMA])  # type: ignore[index]
    row = schema.typical_instance()
    script = (
        "import json, sys, mlflow, pandas as pd\n"
        "assert not any('model-training' in p for p in sys.path), sys.path\n"
        "from mlstack.schema import FeatureSchema\n"
        f"schema = FeatureSchema.from_dict(json.loads({json.dumps(json.dumps(schema.to_dict()))}))\n"
        f"model = mlflow.sklearn.load_model({result.model_uri!r})\n"
        f"frame = schema.to_frame([json.loads({json.dumps(json.dumps(row))})])\n"
        "print(json.dumps(model.predict_proba(frame).tolist()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "MLFLOW_TRACKING_URI": store.uri, "HOME": str(tmp_path)},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    probabilities = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(probabilities[0]) == 3 and abs(sum(probabilities[0]) - 1) < 1e-6


def test_lightgbm_trains_and_converts_when_installed(customers: Customers) -> None:
    """The `lightgbm` extra (in the lock, so CI runs this): its candidate trains and serves with ONNX."""
    if importlib.util.find_spec("lightgbm") is None or importlib.util.find_spec("onnxmltools") is None:
        skip_or_fail("the lightgbm extra is not installed: pip install -e '.[lightgbm]' (the lock has it)")
    if (unloadable := lightgbm_load_error()) is not None:  # its wheel needs the OpenMP runtime (libgomp1)
        skip_or_fail(unloadable)
    import lightgbm

    from mlstack.train import model_requirements

    config = next(c for c in customers.config.training.candidates if c.name == "lightgbm")
    model = customers.fit(config)
    accuracy = float((model.predict(customers.split.x_test) == customers.split.y_test).mean())
    assert accuracy > 0.7
    rows = with_unseen_and_missing(customers.split.x_test)
    payload, status, detail = export_onnx(model, rows, customers.schema, tolerance=1e-4)
    assert status == contract.ONNX_PASSED and payload is not None, detail
    assert f"lightgbm=={lightgbm.__version__}" in model_requirements(model)
