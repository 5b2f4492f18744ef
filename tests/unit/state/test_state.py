"""The pipeline state: typed stage results that survive the JSON file between `mlstack stage` calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlstack.config import GateConfig
from mlstack.gate import decide
from mlstack.state import CandidateResult, PipelineState


def _state() -> PipelineState:
    state = PipelineState(pipeline_id="p1", trigger="drift", data_hash="abc", composition={"new_rows": 3})
    svc = {"f1_weighted": 0.97, "accuracy": 0.96}
    knn = {"f1_weighted": 0.91, "accuracy": 0.9}
    state.candidates = [
        CandidateResult("svc", "r1", "runs:/r1/model", svc, "passed", {"fit_s": 1.5}),
        CandidateResult("knn", "r2", "runs:/r2/model", knn, "skipped"),
    ]
    state.gate = decide("f1_weighted", "4", 0.97, "3", 0.95, GateConfig(floor=0.9))
    state.results = {"train": "svc f1_weighted=0.9700"}
    state.timings = {"train": 12.5}
    return state


def test_the_state_round_trips_through_its_file_typed(tmp_path: Path) -> None:
    state = _state()
    path = tmp_path / "pipeline" / "current.json"
    state.save(path)
    loaded = PipelineState.load(path)
    assert loaded == state
    assert (
        isinstance(loaded.candidates[0], CandidateResult) and loaded.candidates[0].score("accuracy") == 0.96
    )
    assert loaded.gate is not None and loaded.gate.promote and loaded.gate.champion_version == "3"
    # The file is plain JSON: the CT trigger reads it without importing the pipeline.
    raw = json.loads(path.read_text())
    assert raw["gate"]["promote"] is True and raw["candidates"][0]["name"] == "svc"


def test_a_fresh_state_has_no_results(tmp_path: Path) -> None:
    state = PipelineState(pipeline_id="p2", trigger="manual")
    state.save(tmp_path / "s.json")
    loaded = PipelineState.load(tmp_path / "s.json")
    assert loaded.gate is None and loaded.candidates == [] and not loaded.trained


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ('{"pipeline_id": "p", "trigger": "manual", "colour": "red"}', ValueError),
        ('["not", "a", "state"]', ValueError),
        ('{"trigger": "manual"}', TypeError),
        ('{"pipeline_id": "p", "trigger": "manual", "gate": {"promote": true}}', TypeError),
        ("{not json", ValueError),
    ],
)
def test_a_file_that_is_not_a_state_is_refused(tmp_path: Path, content: str, error: type[Exception]) -> None:
    path = tmp_path / "current.json"
    path.write_text(content)
    with pytest.raises(error):
        PipelineState.load(path)
