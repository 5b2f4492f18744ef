"""The pipeline's stage names, in order: light to import (the CLI's dry runs and the Jenkins contract)."""

from __future__ import annotations

STAGES: list[str] = [
    "build",
    "platform",
    "validate-data",
    "train",
    "register",
    "gate",
    "approve",
    "promote",
    "deploy",
    "healthcheck",
    "smoke",
    "drift-report",
]
