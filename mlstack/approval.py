"""Quarantine: a challenger that passed the gate waits for a human decision."""

from __future__ import annotations

from mlstack import registry
from mlstack.config import Config
from mlstack.contract import APPROVED, GATE_PASSED, REJECTED, TAG_APPROVAL, TAG_GATE, approval_value


class ApprovalError(RuntimeError):
    """The version cannot be approved or rejected (not the challenger, gate failed, ...)."""


def _check_challenger(config: Config, version: str) -> None:
    client = registry.make_client(config)
    challenger = registry.challenger_version(client, config)
    if challenger is None or str(challenger.version) != str(version):
        current = str(challenger.version) if challenger else "none"
        raise ApprovalError(f"v{version} is not the {config.project.challenger_alias} (it is {current})")
    if challenger.tags.get(TAG_GATE) != GATE_PASSED:
        raise ApprovalError(
            f"v{version} did not pass the gate ({TAG_GATE}={challenger.tags.get(TAG_GATE, 'unknown')})"
        )


def approve(config: Config, version: str) -> str:
    """Promote the waiting challenger to champion, recording who approved it."""
    _check_challenger(config, version)
    client = registry.make_client(config)
    name = config.project.registered_model
    client.set_model_version_tag(name, str(version), TAG_APPROVAL, approval_value(APPROVED, registry.actor()))
    move = registry.move_alias(client, name, config.project.champion_alias, str(version), "approved")
    old = move.from_version if move else str(version)
    return f"v{version} approved: champion v{old or '-'} -> v{version}"


def reject(config: Config, version: str) -> str:
    """Reject the waiting challenger: the alias is cleared and the rejection recorded."""
    _check_challenger(config, version)
    client = registry.make_client(config)
    name = config.project.registered_model
    client.set_model_version_tag(name, str(version), TAG_APPROVAL, approval_value(REJECTED, registry.actor()))
    registry.clear_alias(client, name, config.project.challenger_alias, f"v{version} rejected")
    return f"v{version} rejected; champion unchanged"
