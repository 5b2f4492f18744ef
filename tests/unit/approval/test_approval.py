"""mlstack.approval on a file-backed MLflow: the quarantined challenger is approved or rejected."""

from __future__ import annotations

import pytest

from mlstack import approval, registry
from mlstack.approval import ApprovalError
from mlstack.config import Config
from mlstack.contract import (
    APPROVED,
    APPROVED_BY_ENV,
    BUILD_TAG_ENV,
    GATE_FAILED,
    GATE_PASSED,
    REJECTED,
    TAG_APPROVAL,
    TAG_GATE,
    approval_value,
)
from tests.support.mlflow_store import FileStore


@pytest.fixture
def config(mlflow_store: FileStore, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.delenv(BUILD_TAG_ENV, raising=False)
    monkeypatch.setenv(APPROVED_BY_ENV, "carol")
    return mlflow_store.config(**{"gate.require_approval": True})


def waiting(store: FileStore, config: Config, gate: str | None = GATE_PASSED, champion: bool = True) -> str:
    """v1 champion (unless not `champion`) and a new version as challenger with its gate tag."""
    client = registry.make_client(config)
    name = config.project.registered_model
    v1, v2 = store.register(name, 2)
    if champion:
        registry.move_alias(client, name, config.project.champion_alias, v1, "first")
    if gate is not None:
        client.set_model_version_tag(name, v2, TAG_GATE, gate)
    registry.move_alias(client, name, config.project.challenger_alias, v2, "candidate")
    return v2


def test_approve_promotes_the_challenger_and_records_the_approver(
    mlflow_store: FileStore, config: Config
) -> None:
    version = waiting(mlflow_store, config)
    assert approval.approve(config, version) == f"v{version} approved: champion v1 -> v{version}"
    client = registry.make_client(config)
    champion = registry.champion_version(client, config)
    assert champion is not None and str(champion.version) == version
    assert champion.tags[TAG_APPROVAL] == approval_value(APPROVED, "jenkins-approver:carol")
    last = registry.history(client, config.project.registered_model)[-1]
    assert (last.alias, last.from_version, last.to_version, last.reason, last.by) == (
        config.project.champion_alias,
        "1",
        version,
        "approved",
        "jenkins-approver:carol",
    )


def test_approve_without_a_previous_champion(mlflow_store: FileStore, config: Config) -> None:
    version = waiting(mlflow_store, config, champion=False)
    assert approval.approve(config, version) == f"v{version} approved: champion v- -> v{version}"


def test_reject_clears_the_challenger_and_keeps_the_champion(mlflow_store: FileStore, config: Config) -> None:
    version = waiting(mlflow_store, config)
    assert approval.reject(config, version) == f"v{version} rejected; champion unchanged"
    client = registry.make_client(config)
    assert registry.challenger_version(client, config) is None
    champion = registry.champion_version(client, config)
    assert champion is not None and str(champion.version) == "1"
    tags = client.get_model_version(config.project.registered_model, version).tags
    assert tags[TAG_APPROVAL] == approval_value(REJECTED, "jenkins-approver:carol")
    last = registry.history(client, config.project.registered_model)[-1]
    assert (last.alias, last.from_version, last.to_version, last.reason) == (
        config.project.challenger_alias,
        version,
        None,
        f"v{version} rejected",
    )


@pytest.mark.parametrize("decide", [approval.approve, approval.reject])
def test_only_the_current_challenger_can_be_decided(
    mlflow_store: FileStore, config: Config, decide: object
) -> None:
    assert callable(decide)
    with pytest.raises(ApprovalError, match=r"^v2 is not the challenger \(it is none\)$"):
        decide(config, "2")
    version = waiting(mlflow_store, config)
    with pytest.raises(ApprovalError, match=rf"^v1 is not the challenger \(it is {version}\)$"):
        decide(config, "1")
    client = registry.make_client(config)
    champion = registry.champion_version(client, config)
    assert champion is not None and str(champion.version) == "1"  # nothing moved


@pytest.mark.parametrize(("gate", "shown"), [(GATE_FAILED, GATE_FAILED), (None, "unknown")])
def test_a_challenger_that_did_not_pass_the_gate_is_refused(
    mlflow_store: FileStore, config: Config, gate: str | None, shown: str
) -> None:
    version = waiting(mlflow_store, config, gate=gate)
    with pytest.raises(ApprovalError, match=rf"^v{version} did not pass the gate \({TAG_GATE}={shown}\)$"):
        approval.approve(config, version)
    client = registry.make_client(config)
    challenger = registry.challenger_version(client, config)
    assert challenger is not None and TAG_APPROVAL not in challenger.tags


def test_the_alias_names_come_from_the_config(
    mlflow_store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(APPROVED_BY_ENV, "carol")
    config = mlflow_store.config(**{"project.champion_alias": "prod", "project.challenger_alias": "next"})
    with pytest.raises(ApprovalError, match=r"^v2 is not the next \(it is none\)$"):
        approval.approve(config, "2")
    version = waiting(mlflow_store, config)
    approval.approve(config, version)
    champion = registry.version_by_alias(
        registry.make_client(config), config.project.registered_model, "prod"
    )
    assert champion is not None and str(champion.version) == version
