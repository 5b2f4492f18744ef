"""Datasets: the base data (wine or CSV), its hash and the train/test split."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split

from mlstack.config import Config, DataConfig


@dataclass
class Dataset:
    """Features, integer class labels and the class names."""

    features: pd.DataFrame
    target: pd.Series
    class_names: list[str]
    target_name: str = "target"
    composition: dict[str, object] = field(default_factory=dict)
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
    """Load the configured base dataset, raw (validation happens in its own stage)."""
    if config.source == "wine":
        bunch = load_wine(as_frame=True)
        features = bunch.data.rename(columns=lambda c: str(c).replace("/", "_"))
        target = bunch.target.astype(int).rename(config.target)
        names = [str(n) for n in bunch.target_names]
        return Dataset(features, target, names, config.target, {"base_rows": len(features)})
    if not config.csv_path:
        raise ValueError("data.source is 'csv' but data.csv_path is not set")
    path = Path(config.csv_path)
    if not path.exists():
        raise FileNotFoundError(f"data.csv_path {path} does not exist")
    frame = pd.read_csv(path)
    if config.target not in frame.columns:
        raise ValueError(f"target column {config.target!r} not in {path} (columns: {list(frame.columns)})")
    raw_target = frame.pop(config.target)
    if pd.api.types.is_numeric_dtype(raw_target) and raw_target.notna().all():
        target = raw_target.astype(int)
        names = [str(v) for v in range(int(target.max()) + 1)] if len(target) else []
    else:
        categories = sorted(raw_target.dropna().astype(str).unique())
        target = raw_target.astype(str).map({c: i for i, c in enumerate(categories)})
        names = categories
    return Dataset(frame, target.rename(config.target), names, config.target, {"base_rows": len(frame)})


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
