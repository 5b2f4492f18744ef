"""The local runtime's services read the run's config, whichever way it was given.

`mlstack run --config model-training/examples/customers.yaml --set ...` once deployed a predictor
that read the default mlstack.yaml: it waited for `wine-classifier@champion` while the run had
registered `customer-outcome`, and the healthcheck timed out. Only `$MLSTACK_CONFIG` reached it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlstack.config import REPO_ROOT, load_config
from mlstack.contract import CONFIG_ENV
from mlstack.runtime.local import LocalRuntime

EXAMPLE = REPO_ROOT / "model-training" / "examples" / "customers.yaml"


def test_the_predictor_and_exporter_get_the_runs_effective_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    config = load_config(
        EXAMPLE,
        overrides={"services.state_dir": str(tmp_path / "state"), "api.max_batch": 17},
        environ={},
    )
    services = LocalRuntime(config).app_services(config)
    assert {s.name for s in services} == {"api", "exporter"}
    for service in services:
        config_file = Path(service.env[CONFIG_ENV])
        assert config_file.is_file() and (config_file.stat().st_mode & 0o777) == 0o600
        # What the service process sees: its environment over ours, the file it is pointed at.
        seen = load_config(environ={**os.environ, **service.env})
        assert seen.project.registered_model == "customer-outcome" == config.project.registered_model
        assert seen.api.max_batch == 17  # a --set override
        assert seen.data.id_column == "customer_id" and seen.state_dir == config.state_dir
