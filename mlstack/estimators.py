"""A candidate's `estimator`: a built-in name, or a dotted path to your own classifier or factory.

- A built-in name (`RandomForestClassifier`, ...) or a dotted path to a scikit-learn-compatible
  classifier class (`lightgbm.LGBMClassifier`, `sklearn.ensemble.ExtraTreesClassifier`,
  `team_models.MyClassifier`): the class is built with the candidate's `params` and placed after
  the schema's ColumnTransformer (`mlstack.preprocessing.model_pipeline`).
- A dotted path to a factory function `factory(schema, **params) -> Pipeline`: the factory builds
  the whole Pipeline, which must start with a ColumnTransformer (it may call
  `mlstack.preprocessing.column_transformer(schema)`) and end in a classifier with `predict_proba`.

Directories in `training.code_dirs` (default `model-training/`) are importable. Modules imported
from them are pickled into the logged model by value, so the predictor needs no copy of the code.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from sklearn.base import is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from mlstack.config import REPO_ROOT, CandidateConfig
from mlstack.preprocessing import model_pipeline, native_library_hint
from mlstack.schema import FeatureSchema

BUILTIN_ESTIMATORS: dict[str, type[Any]] = {
    "RandomForestClassifier": RandomForestClassifier,
    "GradientBoostingClassifier": GradientBoostingClassifier,
    "SVC": SVC,
    "KNeighborsClassifier": KNeighborsClassifier,
    "LogisticRegression": LogisticRegression,
}


class CandidateError(ValueError):
    """A candidate cannot be built: bad path or params, or a factory that failed or built the wrong thing."""

    def __init__(self, candidate: str, message: str) -> None:
        self.candidate = candidate
        super().__init__(f"candidate {candidate!r}: {message}")


def code_directories(code_dirs: Sequence[str]) -> list[Path]:
    """`training.code_dirs` as absolute paths (relative ones are taken from the repository root)."""
    return [Path(d) if Path(d).is_absolute() else REPO_ROOT / d for d in code_dirs]


def add_code_dirs(code_dirs: Sequence[str]) -> list[Path]:
    """Put the code directories first on sys.path (once each), so dotted paths into them import."""
    paths = code_directories(code_dirs)
    for path in reversed(paths):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    return paths


def import_object(path: str) -> Any:
    """The object a dotted path names: `package.module.Name` (or `package.module:Name`).

    Raises:
        ImportError: no importable module prefix, or the module lacks the attribute.
    """
    module_path, colon, attribute = path.partition(":")
    if colon:
        return _attribute(importlib.import_module(module_path), attribute, path)
    parts = path.split(".")
    if len(parts) < 2:
        raise ImportError(f"{path!r} is neither a built-in estimator nor a dotted path (module.Name)")
    failure: ImportError | None = None
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # Only a missing *prefix* means "try a shorter one"; an import error inside it is real.
            if exc.name is None or not module_name.startswith(exc.name):
                raise
            failure = failure or exc
            continue
        obj: Any = module
        for attribute in parts[cut:]:
            obj = _attribute(obj, attribute, path)
        return obj
    raise ImportError(f"cannot import {path!r}: {failure}") from failure


def _attribute(owner: Any, name: str, path: str) -> Any:
    try:
        return getattr(owner, name)
    except AttributeError:
        raise ImportError(f"cannot import {path!r}: {owner.__name__!r} has no attribute {name!r}") from None


def resolve(estimator: str) -> Any:
    """A built-in estimator class, or the object its dotted path names."""
    if estimator in BUILTIN_ESTIMATORS:
        return BUILTIN_ESTIMATORS[estimator]
    if "." not in estimator and ":" not in estimator:
        raise ImportError(
            f"unknown estimator {estimator!r}: not a built-in ({', '.join(sorted(BUILTIN_ESTIMATORS))}) "
            "and not a dotted path (module.Class or module.factory)"
        )
    return import_object(estimator)


def build_candidate(
    candidate: CandidateConfig, schema: FeatureSchema, code_dirs: Sequence[str] = ()
) -> Pipeline:
    """The unfitted Pipeline of one candidate.

    Raises:
        CandidateError: naming the candidate and what went wrong.
    """
    paths = add_code_dirs(code_dirs)
    try:
        target = resolve(candidate.estimator)
    except ImportError as exc:
        raise CandidateError(candidate.name, f"estimator {candidate.estimator!r}: {exc}") from exc
    except OSError as exc:  # the module imported a native library the machine lacks
        raise CandidateError(
            candidate.name, f"estimator {candidate.estimator!r} cannot load: {native_library_hint(exc)}"
        ) from exc
    _pickle_by_value_if_local(target, paths)
    if inspect.isclass(target):
        try:
            estimator = target(**candidate.params)
        except TypeError as exc:
            raise CandidateError(candidate.name, f"bad params {candidate.params}: {exc}") from exc
        _check_classifier(candidate.name, estimator, candidate.estimator)
        return model_pipeline(schema, estimator, scale=candidate.scale)
    if callable(target):
        try:
            built = target(schema, **candidate.params)
        except Exception as exc:  # the factory is the team's code: report whatever it raised
            raise CandidateError(
                candidate.name, f"factory {candidate.estimator} failed: {type(exc).__name__}: {exc}"
            ) from exc
        return _check_pipeline(candidate.name, built, candidate.estimator)
    raise CandidateError(
        candidate.name,
        f"{candidate.estimator!r} is a {type(target).__name__}, not a classifier class or factory",
    )


def _check_classifier(name: str, estimator: Any, path: str) -> None:
    if not (hasattr(estimator, "fit") and hasattr(estimator, "predict_proba")):
        raise CandidateError(
            name,
            f"{path} is not a classifier with predict_proba (the predictor serves class probabilities)",
        )
    if not is_classifier(estimator):
        raise CandidateError(
            name, f"{path} is not a scikit-learn classifier (its estimator type is not 'classifier')"
        )


def _check_pipeline(name: str, built: Any, path: str) -> Pipeline:
    if not isinstance(built, Pipeline):
        raise CandidateError(name, f"factory {path} returned {type(built).__name__}, not a sklearn Pipeline")
    first = built.steps[0][1]
    if not isinstance(first, ColumnTransformer):
        raise CandidateError(
            name,
            f"factory {path} returned a Pipeline starting with {type(first).__name__}; it must start with "
            "a ColumnTransformer (use mlstack.preprocessing.column_transformer(schema))",
        )
    _check_classifier(name, built, path)
    return built


def _pickle_by_value_if_local(target: Any, code_dirs: Sequence[Path]) -> None:
    """Ship a model's own code inside its pickle when that code lives in a code directory."""
    import cloudpickle

    module = inspect.getmodule(target)
    if module is None or not _inside(module, code_dirs):
        return
    top = sys.modules[module.__name__.split(".")[0]]
    if _inside(top, code_dirs):
        cloudpickle.register_pickle_by_value(top)


def _inside(module: ModuleType, directories: Sequence[Path]) -> bool:
    filename = getattr(module, "__file__", None)
    if not filename:
        return False
    resolved = Path(filename).resolve()
    return any(resolved.is_relative_to(d.resolve()) for d in directories)
