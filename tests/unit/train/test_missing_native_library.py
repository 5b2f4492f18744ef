"""A wheel whose native library is missing (LightGBM without libgomp on a slim machine).

Found on a fresh `python:3.11-slim` machine: LightGBM is in the lock, its wheel links against the
system's OpenMP runtime, and the import raised OSError (not ImportError), which failed every
candidate, even the built-in ones that never use LightGBM.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pandas as pd
import pytest

from mlstack.config import CandidateConfig
from mlstack.estimators import CandidateError, build_candidate
from mlstack.feature_types import infer_schema
from mlstack.preprocessing import register_onnx_converters

LOADER_ERROR = "libgomp.so.1: cannot open shared object file: No such file or directory"


@pytest.fixture
def unloadable_lightgbm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `lightgbm` (and `brokenlib`) first on sys.path whose import fails like the real loader's."""
    for name in ("lightgbm", "brokenlib"):
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text(f"raise OSError({LOADER_ERROR!r})\n")
    for name in [m for m in sys.modules if m == "lightgbm" or m.startswith("lightgbm.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_an_unloadable_lightgbm_is_skipped_with_a_warning_that_says_how_to_install_it(
    unloadable_lightgbm: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mlstack.preprocessing"):
        assert register_onnx_converters() == []
    assert "LightGBM is installed but cannot load" in caplog.text
    assert LOADER_ERROR in caplog.text
    assert "apt-get install libgomp1" in caplog.text


def test_a_candidate_whose_library_cannot_load_fails_alone_naming_the_library(
    unloadable_lightgbm: Path,
) -> None:
    schema = infer_schema(
        pd.DataFrame({"x": [1.0, 2.0], "y": [0.5, 0.1]}), pd.Series([0, 1]), ["a", "b"], "label"
    )
    candidate = CandidateConfig(name="gbm", estimator="brokenlib.Classifier")
    with pytest.raises(CandidateError) as raised:
        build_candidate(candidate, schema, code_dirs=[str(unloadable_lightgbm)])
    message = str(raised.value)
    assert "gbm" in message
    assert "'brokenlib.Classifier' cannot load" in message
    assert "apt-get install libgomp1" in message
