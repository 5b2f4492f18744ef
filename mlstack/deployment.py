"""The pipeline's port to where the services run: what a runtime (local processes, compose containers)
must do for the platform stages. The runtimes live in `mlstack.runtime`; the core only knows this protocol."""

from __future__ import annotations

from typing import Protocol

from mlstack.config import Config


class RuntimeActionError(RuntimeError):
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
        """Wait for every service to be healthy; return service -> status, raise RuntimeActionError if not."""
        ...

    def service_urls(self, config: Config) -> dict[str, str]:
        """Host-reachable URLs of the services, for summaries and smoke tests."""
        ...

    def stop(self, config: Config) -> None:
        """Stop what this runtime started."""
        ...
