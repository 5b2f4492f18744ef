"""What a runtime (local processes or compose containers) must do for the pipeline's platform stages."""

from __future__ import annotations

from typing import Protocol

from mlstack.config import Config


class RuntimeError_(RuntimeError):
    """A runtime action failed; the message says which service and why."""


class Runtime(Protocol):
    """The platform side of the pipeline: build, start, deploy, check."""

    name: str

    def build(self, config: Config) -> str:
        """Build what the runtime runs (images); return a one-line summary."""
        ...

    def start_platform(self, config: Config) -> None:
        """Start or reuse MLflow and the monitoring services (Prometheus, Alertmanager, ...)."""
        ...

    def deploy(self, config: Config) -> None:
        """Start or recreate the predictor and the exporter."""
        ...

    def healthcheck(self, config: Config) -> dict[str, str]:
        """Wait for every service to be healthy; return service -> status, raise RuntimeError_ if not."""
        ...

    def service_urls(self, config: Config) -> dict[str, str]:
        """Host-reachable URLs of the services, for summaries and smoke tests."""
        ...

    def stop(self, config: Config) -> None:
        """Stop what this runtime started."""
        ...
