"""What the stages of one pipeline run hand to each other, typed, and its JSON file.

`mlstack stage A` and a later `mlstack stage B` (the Jenkinsfile runs one stage per call) share
this state through `<state_dir>/pipeline/current.json`; the CT trigger reads the same file to
learn how a run it started ended. Light to import: no MLflow, no scikit-learn.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mlstack.contract import OnnxParity
from mlstack.gate import GateDecision


@dataclass(frozen=True)
class CandidateResult:
    """One trained candidate and where it lives in MLflow."""

    name: str
    run_id: str
    model_uri: str
    metrics: dict[str, float]
    onnx_parity: OnnxParity
    timings: dict[str, float] = field(default_factory=dict)
    onnx_detail: str = ""  # why the candidate serves with ONNX Runtime or with sklearn

    def score(self, metric: str) -> float:
        return self.metrics[metric]


@dataclass
class PipelineState:
    """The run's id and trigger, what each stage found, and each stage's result line and duration."""

    pipeline_id: str
    trigger: str
    started_at: float = field(default_factory=time.time)
    data_hash: str | None = None
    composition: dict[str, Any] = field(default_factory=dict)
    candidates: list[CandidateResult] = field(default_factory=list)  # best first
    failed_candidates: dict[str, str] = field(default_factory=dict)  # name -> error
    registered_version: str | None = None
    gate: GateDecision | None = None
    previous_champion: str | None = None
    promoted: bool = False
    awaiting_approval: bool = False
    skipped: str | None = None
    rolled_back: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    results: dict[str, str] = field(default_factory=dict)

    @property
    def trained(self) -> bool:
        return bool(self.candidates)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: nested results become plain objects."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineState:
        """Rebuild the typed state from `to_dict()`'s output.

        Raises:
            TypeError, KeyError, ValueError: not a state this version wrote.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown pipeline state field(s) {unknown}")
        values = dict(data)
        values["candidates"] = [CandidateResult(**c) for c in data.get("candidates", [])]
        values["gate"] = GateDecision(**data["gate"]) if data.get("gate") else None
        return cls(**values)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: Path) -> PipelineState:
        """Read a state file.

        Raises:
            OSError: unreadable; ValueError, TypeError, KeyError: not a pipeline state.
        """
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not a pipeline state")
        return cls.from_dict(data)
