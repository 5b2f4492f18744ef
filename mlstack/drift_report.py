"""The drift-report stage: the current prediction window against the champion's reference."""

from __future__ import annotations

from pathlib import Path

from mlstack.config import Config


def write_drift_report(config: Config, path: Path) -> str:
    """Compute drift on the latest prediction window and write the HTML report to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        from mlstack.drift import report_for_champion
    except ImportError:
        path.write_text("<html><body><p>drift module not installed</p></body></html>")
        return "skipped: drift module not installed"
    return report_for_champion(config, path)
