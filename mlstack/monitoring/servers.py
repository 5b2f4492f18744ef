"""prometheus.yml and alertmanager.yml for one target's endpoints."""

from __future__ import annotations

from typing import Any

from mlstack.config import Config
from mlstack.contract import CT_LABEL
from mlstack.monitoring import alerts, recording
from mlstack.monitoring.endpoints import Endpoints
from mlstack.monitoring.names import DEFAULT_RECEIVER, RETRAIN_RECEIVER, SERVICES
from mlstack.monitoring.promql import duration

RULE_FILES = [f"rules/{recording.RULE_FILE}", f"rules/{alerts.RULE_FILE}"]


def prometheus_config(config: Config, ends: Endpoints) -> dict[str, Any]:
    """prometheus.yml: one job per service, relabelled with `service`, alerting, rule files."""
    interval = config.monitoring.scrape_interval_s
    jobs = [
        {
            "job_name": name,
            "metrics_path": "/metrics",
            **ends.discovery(name),
            "relabel_configs": [*ends.relabel(name), {"target_label": "service", "replacement": name}],
        }
        for name in SERVICES
    ]
    return {
        "global": {
            "scrape_interval": duration(interval),
            "scrape_timeout": duration(min(10, interval)),
            "evaluation_interval": duration(interval),
        },
        "alerting": {"alertmanagers": ends.alertmanagers()},
        "rule_files": RULE_FILES,
        "scrape_configs": jobs,
    }


def alertmanager_config(config: Config, ends: Endpoints) -> dict[str, Any]:
    """alertmanager.yml: CT alerts to the retrain webhook, the rest to a null receiver.

    Against a retrain storm: CT alerts are grouped by `ct_trigger` alone (every drifting feature or
    version makes one notification), a new alert joins a notified group only after `group_interval`
    (at least the CT cooldown), a still-firing group is re-sent after `repeat_interval` (a day), and
    resolutions are not sent. The rules add `for:` and `keep_firing_for:`; the trigger enforces
    `ct.cooldown_s` and new-data requirements on its side.
    """
    webhook: dict[str, Any] = {"url": ends.webhook_url, "send_resolved": False, "max_alerts": 10}
    if ends.token_file:
        webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials_file": ends.token_file}}
    ct_interval = max(300.0, config.ct.cooldown_s)
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": DEFAULT_RECEIVER,
            "group_by": ["alertname", "service"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {
                    "receiver": RETRAIN_RECEIVER,
                    "matchers": [f'{CT_LABEL}=~".+"'],
                    "group_by": [CT_LABEL],
                    "group_wait": "30s",
                    "group_interval": duration(ct_interval),
                    "repeat_interval": "24h",
                }
            ],
        },
        "receivers": [
            {"name": DEFAULT_RECEIVER},
            {"name": RETRAIN_RECEIVER, "webhook_configs": [webhook]},
        ],
    }
