"""deploy/k8s/base/monitoring holds exactly what `mlstack render monitoring --target k8s` writes now."""

from __future__ import annotations

from pathlib import Path

from mlstack.config import load_config
from mlstack.monitoring.render import render_monitoring
from mlstack.runtime.k8s import MONITORING_DIR


def test_committed_k8s_monitoring_files_equal_a_fresh_render(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLSTACK_WEBHOOK_URL", raising=False)
    rendered = render_monitoring(load_config(environ={}), "k8s", tmp_path)
    fresh = {p.relative_to(tmp_path) for p in rendered.all}
    committed = {p.relative_to(MONITORING_DIR) for p in MONITORING_DIR.rglob("*") if p.is_file()}
    assert committed == fresh, "run `mlstack render monitoring --target k8s` and commit the result"
    for relative in sorted(fresh):
        assert (MONITORING_DIR / relative).read_text() == (tmp_path / relative).read_text(), (
            f"{relative} is stale: run `mlstack render monitoring --target k8s` and commit the result"
        )
