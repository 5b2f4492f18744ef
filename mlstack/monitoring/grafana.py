"""Grafana provisioning: the Prometheus datasource every dashboard panel names, and the dashboard provider."""

from __future__ import annotations

from typing import Any

from mlstack.config import Config
from mlstack.monitoring.dashboards import DATASOURCE_UID
from mlstack.monitoring.endpoints import Endpoints
from mlstack.monitoring.promql import duration

# Where the Grafana container reads the dashboard JSON (docker-compose.yaml mounts grafana/dashboards).
DASHBOARDS_PATH = "/var/lib/grafana/dashboards"


def datasource_provisioning(config: Config, ends: Endpoints) -> dict[str, Any]:
    """provisioning/datasources/prometheus.yml: the one Prometheus, with the uid the panels use."""
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "uid": DATASOURCE_UID,
                "type": "prometheus",
                "access": "proxy",
                "url": ends.prometheus_url(),
                "isDefault": True,
                "editable": False,
                # Grafana's $__rate_interval is at least four of these: a rate never spans one scrape.
                "jsonData": {"timeInterval": duration(config.monitoring.scrape_interval_s)},
            }
        ],
    }


def dashboard_provisioning() -> dict[str, Any]:
    """provisioning/dashboards/dashboards.yml: the rendered JSON, read-only in Grafana."""
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "mlstack",
                "orgId": 1,
                "folder": "mlstack",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 30,
                "options": {"path": DASHBOARDS_PATH, "foldersFromFilesStructure": False},
            }
        ],
    }
