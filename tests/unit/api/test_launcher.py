"""`python -m mlstack_api`: the worker-count rule, the metrics directory, and one command line everywhere."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import mlstack_api.__main__ as launcher
import pytest

from mlstack import contract
from mlstack.config import REPO_ROOT
from mlstack.contract import PROMETHEUS_MULTIPROC_DIR_ENV
from mlstack.runtime.local import api_command


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000\n", None), ("150000 100000\n", 1.5), ("200000 100000\n", 2.0), ("garbage\n", None)],
)
def test_cgroup_v2_quota(tmp_path: Path, cpu_max: str, expected: float | None) -> None:
    v2 = tmp_path / "cpu.max"
    v2.write_text(cpu_max)
    missing = tmp_path / "absent"
    assert launcher.cgroup_cpu_limit(v2, missing, missing) == expected


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    quota, period = tmp_path / "quota", tmp_path / "period"
    quota.write_text("50000\n")
    period.write_text("100000\n")
    assert launcher.cgroup_cpu_limit(tmp_path / "absent", quota, period) == 0.5
    quota.write_text("-1\n")  # no limit
    assert launcher.cgroup_cpu_limit(tmp_path / "absent", quota, period) is None


def test_workers_default_to_the_cpus_the_quota_allows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    monkeypatch.setattr(launcher, "cgroup_cpu_limit", lambda: None)
    assert launcher.available_cpus() == 4
    monkeypatch.setattr(launcher, "cgroup_cpu_limit", lambda: 1.5)  # docker --cpus 1.5: 2 workers
    assert launcher.available_cpus() == 2
    monkeypatch.setattr(launcher, "cgroup_cpu_limit", lambda: 0.25)  # a fraction still gets one
    assert launcher.available_cpus() == 1


def test_the_metrics_directory_is_cleared_before_workers_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = tmp_path / "metrics"
    stale.mkdir()
    (stale / "counter_123.db").write_bytes(b"old counts")
    (stale / "served-123.json").write_text(json.dumps({"version": "1"}))
    monkeypatch.setenv(PROMETHEUS_MULTIPROC_DIR_ENV, str(stale))
    assert launcher.prepare_metrics_dir() == stale
    assert list(stale.iterdir()) == []
    monkeypatch.delenv(PROMETHEUS_MULTIPROC_DIR_ENV)
    fresh = launcher.prepare_metrics_dir()
    assert fresh.is_dir() and os.environ[PROMETHEUS_MULTIPROC_DIR_ENV] == str(fresh)


def test_the_image_runs_the_same_entry_point_as_the_local_runtime() -> None:
    dockerfile = (REPO_ROOT / "api" / "Dockerfile").read_text()
    (cmd,) = re.findall(r"^CMD (\[.*\])$", dockerfile, flags=re.MULTILINE)
    image = json.loads(cmd)
    local = api_command(contract.CONTAINER_PORTS[contract.API], host="0.0.0.0")
    assert image[1:3] == local[1:3] == ["-m", "mlstack_api"]
    # Same flags; the local runtime names the app explicitly (the benchmarks swap it for a bare one).
    assert set(image[3:]) <= set(local[3:]) and "--workers" not in image
