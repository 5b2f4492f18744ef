"""Run the real pipeline stages in tests, against a real MLflow server, with no services to deploy."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlstack.config import Config, load_config
from mlstack.pipeline import Options, Pipeline
from mlstack.state import PipelineState
from tests.support.mlflow_server import MlflowServer

TRAINING = ["validate-data", "train", "register", "gate", "approve", "promote"]
FAST_MODELS = ["random_forest", "logistic_regression"]


class NoServicesRuntime:
    """A runtime with nothing to build, start or check: the training stages need none."""

    name = "none"

    def build(self, config: Config) -> str:
        return "nothing to build"

    def start_platform(self, config: Config) -> None:
        return None

    def deploy(self, config: Config) -> None:
        return None

    def healthcheck(self, config: Config) -> dict[str, str]:
        return {}

    def service_urls(self, config: Config) -> dict[str, str]:
        return {}

    def stop(self, config: Config) -> None:
        return None


def isolated_config(
    tracking_uri: str, state_dir: Path, models: list[str] | None = None, **overrides: Any
) -> Config:
    """A config isolated from the developer's environment: given MLflow, own state dir, fast models."""
    from mlstack.config import select_candidates

    base = {"mlflow.tracking_uri": tracking_uri, "services.state_dir": str(state_dir)}
    config = load_config(overrides={**base, **overrides}, environ={})
    return select_candidates(config, models if models is not None else FAST_MODELS)


def run_training(config: Config, stages: list[str] | None = None, **options: Any) -> PipelineState:
    """Run the training stages (validate-data .. promote) and return the pipeline state."""
    pipeline = Pipeline(config, Options(**options), NoServicesRuntime())
    pipeline.new_run()
    pipeline.run_stages(stages or TRAINING)
    return pipeline.state


@dataclass
class TrainedRegistry:
    """A real MLflow server with `wine-classifier@champion` already trained and promoted."""

    server: MlflowServer
    state_dir: Path
    first_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tracking_uri(self) -> str:
        return self.server.url

    @property
    def model_name(self) -> str:
        return self.config().project.registered_model

    def config(self, **overrides: Any) -> Config:
        return isolated_config(self.tracking_uri, self.state_dir, **overrides)

    def train_and_promote(self, models: list[str] | None = None, force: bool = True) -> str:
        """Train a new version and move the champion to it; return the new version."""
        state = run_training(isolated_config(self.tracking_uri, self.state_dir, models), force=force)
        assert state.promoted, state.results
        return str(state.registered_version)
