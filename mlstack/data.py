"""Datasets: the base data (wine or CSV), its hash and the train/test split."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split

from mlstack.config import REPO_ROOT, Config, DataConfig


@dataclass
class Dataset:
    """Features, integer class labels and the class names."""

    features: pd.DataFrame
    target: pd.Series
    class_names: list[str]
    target_name: str = "target"
    composition: dict[str, object] = field(default_factory=dict)
    ids: pd.Series | None = None  # the id column's values (data.id_column), never a feature
    # When each row was observed (a feedback row's prediction time; NaN for base rows), or None:
    # the drift reference can then stand for the rows fitted most recently (`data.reference`).
    observed_at: pd.Series | None = None

    @property
    def frame(self) -> pd.DataFrame:
        return self.features.assign(**{self.target_name: self.target.to_numpy()})

    def content_hash(self) -> str:
        """A stable hash of the data, logged as lineage."""
        digest = hashlib.sha256(pd.util.hash_pandas_object(self.frame, index=False).to_numpy().tobytes())
        digest.update(",".join(map(str, self.frame.columns)).encode())
        return digest.hexdigest()[:16]


@dataclass
class Split:
    """The train/test split used by training and the gate alike."""

    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series


def load_base_dataset(config: DataConfig) -> Dataset:
    """Load the configured base dataset, raw (validation happens in its own stage).

    The id column and `drop_columns` are taken out of the features here; every other column is a
    feature whose type `mlstack.feature_types` infers (or the config declares). Columns declared
    categorical are read as text, so a code like `007` keeps its zeros.
    """
    if config.source == "wine":
        bunch = load_wine(as_frame=True)
        frame = bunch.data.rename(columns=lambda c: str(c).replace("/", "_"))
        frame[config.target] = bunch.target.astype(int)
        names = [str(n) for n in bunch.target_names]
        features, ids = _features(frame.drop(columns=[config.target]), config, "the wine data")
        target = frame[config.target].rename(config.target)
        return Dataset(features, target, names, config.target, {"base_rows": len(features)}, ids)
    if not config.csv_path:
        raise ValueError("data.source is 'csv' but data.csv_path is not set")
    path = Path(config.csv_path)
    path = path if path.is_absolute() else REPO_ROOT / path  # like services.state_dir
    if not path.exists():
        raise FileNotFoundError(f"data.csv_path {path} does not exist")
    text_columns = {name: str for name, column in config.columns.items() if column.type == "categorical"}
    frame = pd.read_csv(path, dtype=text_columns or None)
    if config.target not in frame.columns:
        raise ValueError(f"target column {config.target!r} not in {path} (columns: {list(frame.columns)})")
    raw_target = frame.pop(config.target)
    frame, ids = _features(frame, config, str(path))
    if pd.api.types.is_numeric_dtype(raw_target) and raw_target.notna().all():
        target = raw_target.astype(int)
        names = [str(v) for v in range(int(target.max()) + 1)] if len(target) else []
    else:
        categories = sorted(raw_target.dropna().astype(str).unique())
        target = raw_target.astype(str).map({c: i for i, c in enumerate(categories)})
        names = categories
    return Dataset(frame, target.rename(config.target), names, config.target, {"base_rows": len(frame)}, ids)


def _features(frame: pd.DataFrame, config: DataConfig, source: str) -> tuple[pd.DataFrame, pd.Series | None]:
    """Split the id column and the dropped columns off the feature columns."""
    named = [*config.drop_columns, *([config.id_column] if config.id_column else [])]
    absent = [c for c in named if c not in frame.columns]
    if absent:
        raise ValueError(
            f"data.drop_columns / data.id_column name {absent}, which {source} does not have "
            f"(columns: {list(frame.columns)})"
        )
    ids = frame.pop(config.id_column) if config.id_column else None
    return frame.drop(columns=list(config.drop_columns)), ids


def split(dataset: Dataset, config: Config) -> Split:
    """Stratified, seeded split: the same data and seed always give the same test set."""
    x_train, x_test, y_train, y_test = train_test_split(
        dataset.features,
        dataset.target,
        test_size=config.data.test_size,
        random_state=config.data.seed,
        stratify=dataset.target,
    )
    return Split(x_train, x_test, y_train, y_test)
