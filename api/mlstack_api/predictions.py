"""Turning a probability matrix into prediction ids, log rows and response objects, in bulk.

Every function here works on whole batches with numpy and C-level `map`/`zip`, so a 100-row request
costs a handful of Python-level operations, not a few hundred.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from mlstack.store import PredictionRows
from mlstack_api.model import ModelInput, ServedModel

_HEX_PER_ID = 32
_RANDOM_HEX = 18  # 72 random bits per id, after the 48-bit millisecond timestamp
_PREDICTION_KEYS = ("id", "label", "class_name", "probabilities")


def prediction_ids(count: int, now: float | None = None) -> list[str]:
    """`count` new prediction ids: UUIDv7 (RFC 9562) written as 32 hex digits.

    Time-ordered (48-bit millisecond timestamp first), so the store's primary-key index grows at
    its right edge instead of at random pages; 72 random bits keep ids unguessable and unique.
    """
    millis = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    head = np.frombuffer(f"{millis:012x}7".encode(), dtype=np.uint8)
    random_hex = np.frombuffer(os.urandom(count * _RANDOM_HEX // 2).hex().encode(), dtype=np.uint8)
    random_hex = random_hex.reshape(count, _RANDOM_HEX)
    chars = np.empty((count, _HEX_PER_ID), dtype=np.uint8)
    chars[:, :13] = head
    chars[:, 13:16] = random_hex[:, :3]  # rand_a
    chars[:, 16] = ord("8")  # variant 10xx
    chars[:, 17:] = random_hex[:, 3:]  # rand_b
    text = chars.tobytes().decode("ascii")
    bounds = range(0, count * _HEX_PER_ID, _HEX_PER_ID)
    return list(
        map(text.__getitem__, map(slice, bounds, range(_HEX_PER_ID, (count + 1) * _HEX_PER_ID, _HEX_PER_ID)))
    )


@dataclass(frozen=True)
class Scored:
    """One request's predictions: what the log stores and what the response shows."""

    ids: list[str]
    ts: float
    winners: np.ndarray  # index of the predicted class per row
    labels: list[int]
    probabilities: list[list[float]]  # class order

    def log_rows(self, model: ServedModel, instances: Sequence[Mapping[str, Any]]) -> PredictionRows:
        return PredictionRows(
            self.ids, self.ts, model.name, model.version, instances, self.labels, self.probabilities
        )

    def class_counts(self, classes: int) -> list[int]:
        """Predictions per class index (for the per-class counter: one increment per class, not per row)."""
        return np.bincount(self.winners, minlength=classes).tolist()

    def class_names(self, model: ServedModel) -> list[str]:
        """The predicted class's name per row."""
        names: list[str] = np.asarray(model.class_names, dtype=object)[self.winners].tolist()
        return names

    def response_items(self, model: ServedModel) -> list[dict[str, Any]]:
        """`/predict`'s `predictions` list: id, label, class name and the probability of each class."""
        names = model.class_names
        class_names = self.class_names(model)
        by_class = map(dict, map(zip, repeat(names), self.probabilities))
        return list(
            map(
                dict,
                map(
                    zip,
                    repeat(_PREDICTION_KEYS),
                    zip(self.ids, self.labels, class_names, by_class, strict=True),
                ),
            )
        )


class Unscorable(ValueError):
    """The model returned non-finite probabilities for instance `index` (valid, but absurd, values)."""

    def __init__(self, index: int) -> None:
        self.index = index
        super().__init__(
            f"the model's probabilities for instance {index} are not finite numbers "
            "(values far outside the training range?); nothing was predicted"
        )


def score(model: ServedModel, batch: ModelInput) -> Scored:
    """Run the model on a validated batch; the label is the most probable class (both runtimes).

    Raises:
        Unscorable: the model produced NaN or infinite probabilities for a row (float32-valid but
            extreme inputs overflow inside the model): an answer would be meaningless.
    """
    now = time.time()
    probabilities = model.predict_proba(batch)
    finite = np.isfinite(probabilities).all(axis=1)
    if not finite.all():
        raise Unscorable(int(np.argmin(finite)))
    winners = probabilities.argmax(axis=1)
    labels = np.asarray(model.class_labels)[winners].tolist()
    return Scored(prediction_ids(len(winners), now), now, winners, labels, probabilities.tolist())
