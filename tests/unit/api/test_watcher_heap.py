"""The watcher freezes the heap after each swap (no GC pauses under load) without leaking old models."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from mlstack_api import watcher
from mlstack_api.watcher import ModelWatcher, settle_heap


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """Leave the test process's collector as it was found."""
    yield
    gc.unfreeze()


class Model:
    """Stands in for a served model: a reference cycle, like real estimator graphs have."""

    def __init__(self, version: str) -> None:
        self.name, self.version, self.alias, self.runtime, self.load_seconds = (
            "m",
            version,
            "champion",
            "onnx",
            0.0,
        )
        self.itself = self


def test_a_settled_heap_is_frozen_and_the_next_settle_reclaims_what_was_let_go() -> None:
    model = Model("1")
    alive = weakref.ref(model)
    settle_heap()
    assert gc.get_freeze_count() > 0
    del model
    gc.collect()
    assert alive() is not None  # frozen: full collections no longer walk (or free) it
    settle_heap()
    assert alive() is None  # the next swap's settle reclaims the old model's cycle


def test_each_swap_settles_the_heap_and_an_unchanged_poll_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    versions = iter(["1", "1", "2"])
    client: Any = SimpleNamespace(
        get_model_version_by_alias=lambda _n, _a: SimpleNamespace(version=next(versions))
    )
    monkeypatch.setattr(
        watcher, "load_version", lambda _c, _n, target, _a, prefer_onnx: Model(target.version)
    )
    settled: list[str | None] = []
    w = ModelWatcher(client, "m", "champion", interval_s=1.0)
    monkeypatch.setattr(
        watcher, "settle_heap", lambda: settled.append(w.current.version if w.current else None)
    )
    assert [w.poll_once(), w.poll_once(), w.poll_once()] == ["success", "unchanged", "success"]
    assert settled == ["1", "2"]  # after the swap: the new model is what gets frozen
