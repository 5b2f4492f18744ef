"""mlstack.registry on a file-backed MLflow: aliases, their recorded history, rollback, actors."""

from __future__ import annotations

import getpass
import json

import pytest
from mlflow.tracking import MlflowClient

from mlstack import registry
from mlstack.config import Config, load_config
from mlstack.contract import ALIAS_HISTORY_TAG_PREFIX, APPROVED_BY_ENV, BUILD_TAG_ENV
from mlstack.registry import AliasMove, RegistryError
from tests.support.mlflow_store import FileStore

PROJECT = load_config(environ={}).project
CHAMPION, CHALLENGER = PROJECT.champion_alias, PROJECT.challenger_alias


@pytest.fixture
def config(mlflow_store: FileStore) -> Config:
    return mlflow_store.config()


@pytest.fixture
def client(config: Config) -> MlflowClient:
    return registry.make_client(config)


@pytest.fixture(autouse=True)
def local_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(APPROVED_BY_ENV, raising=False)
    monkeypatch.delenv(BUILD_TAG_ENV, raising=False)
    monkeypatch.setattr(getpass, "getuser", lambda: "alice")


def test_actor_prefers_the_jenkins_approver_then_the_build_then_the_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert registry.actor() == "user:alice"
    monkeypatch.setenv(BUILD_TAG_ENV, "jenkins-mlstack-42")
    assert registry.actor() == "jenkins:jenkins-mlstack-42"
    monkeypatch.setenv(APPROVED_BY_ENV, "bob")
    assert registry.actor() == "jenkins-approver:bob"


def test_actor_without_a_user_name(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_user() -> str:
        raise KeyError("uid 12345 has no passwd entry")

    monkeypatch.setattr(getpass, "getuser", no_user)
    assert registry.actor() == "user:unknown"


def test_make_client_uses_the_tracking_uri_as_registry(config: Config) -> None:
    client = registry.make_client(config)
    assert client.tracking_uri == config.mlflow.tracking_uri
    assert client._registry_uri == config.mlflow.tracking_uri


def test_missing_model_or_alias_is_none_not_an_error(
    mlflow_store: FileStore, client: MlflowClient, config: Config
) -> None:
    name = config.project.registered_model
    assert registry.version_by_alias(client, "no-such-model", CHAMPION) is None
    assert registry.champion_version(client, config) is None
    mlflow_store.register(name, 1)
    assert registry.champion_version(client, config) is None  # registered, never promoted
    assert registry.history(client, "no-such-model") == []


def test_move_alias_points_the_alias_and_records_who_why_and_from_where(
    mlflow_store: FileStore, client: MlflowClient, config: Config
) -> None:
    name = config.project.registered_model
    v1, v2 = mlflow_store.register(name, 2)
    first = registry.move_alias(client, name, CHAMPION, v1, "first promotion")
    assert first is not None
    assert (first.seq, first.alias, first.from_version, first.to_version) == (1, CHAMPION, None, v1)
    assert (first.by, first.reason) == ("user:alice", "first promotion")
    second = registry.move_alias(client, name, CHAMPION, v2, "beats v1")
    assert second is not None and (second.seq, second.from_version, second.to_version) == (2, v1, v2)

    champion = registry.champion_version(client, config)
    assert champion is not None and str(champion.version) == v2
    # The history lives in registered-model tags named alias_history.<6-digit seq>, as JSON.
    tags = client.get_registered_model(name).tags
    assert sorted(k for k in tags if k.startswith(ALIAS_HISTORY_TAG_PREFIX)) == [
        f"{ALIAS_HISTORY_TAG_PREFIX}000001",
        f"{ALIAS_HISTORY_TAG_PREFIX}000002",
    ]
    payload = json.loads(tags[f"{ALIAS_HISTORY_TAG_PREFIX}000002"])
    assert {k: payload[k] for k in ("alias", "from", "to", "by", "reason")} == {
        "alias": CHAMPION,
        "from": v1,
        "to": v2,
        "by": "user:alice",
        "reason": "beats v1",
    }
    assert registry.history(client, name) == [first, second]


def test_moving_an_alias_where_it_already_points_records_nothing(
    mlflow_store: FileStore, client: MlflowClient, config: Config
) -> None:
    name = config.project.registered_model
    (v1,) = mlflow_store.register(name, 1)
    assert registry.move_alias(client, name, CHAMPION, v1, "first") is not None
    assert registry.move_alias(client, name, CHAMPION, v1, "again") is None
    assert [m.reason for m in registry.history(client, name)] == ["first"]


def test_clear_alias_removes_it_and_records_the_move(
    mlflow_store: FileStore, client: MlflowClient, config: Config
) -> None:
    name = config.project.registered_model
    (v1,) = mlflow_store.register(name, 1)
    assert registry.clear_alias(client, name, CHALLENGER, "nothing there") is None
    registry.move_alias(client, name, CHALLENGER, v1, "candidate")
    cleared = registry.clear_alias(client, name, CHALLENGER, "v1 rejected")
    assert cleared is not None and (cleared.from_version, cleared.to_version) == (v1, None)
    assert registry.challenger_version(client, config) is None
    assert [(m.alias, m.from_version, m.to_version, m.reason) for m in registry.history(client, name)] == [
        (CHALLENGER, None, v1, "candidate"),
        (CHALLENGER, v1, None, "v1 rejected"),
    ]


def test_aliases_follow_the_config(mlflow_store: FileStore) -> None:
    config = mlflow_store.config(**{"project.champion_alias": "prod", "project.challenger_alias": "next"})
    client = registry.make_client(config)
    name = config.project.registered_model
    v1, v2 = mlflow_store.register(name, 2)
    registry.move_alias(client, name, "prod", v1, "promoted")
    registry.move_alias(client, name, "next", v2, "candidate")
    champion, challenger = (
        registry.champion_version(client, config),
        registry.challenger_version(client, config),
    )
    assert champion is not None and str(champion.version) == v1
    assert challenger is not None and str(challenger.version) == v2


def test_history_is_ordered_by_sequence_not_by_tag_order(
    mlflow_store: FileStore, client: MlflowClient, config: Config
) -> None:
    name = config.project.registered_model
    versions = mlflow_store.register(name, 3)
    for version in versions:
        registry.move_alias(client, name, CHAMPION, version, f"to {version}")
    moves = registry.history(client, name)
    assert [m.seq for m in moves] == [1, 2, 3]
    assert [m.to_version for m in moves] == versions
    assert all(isinstance(m, AliasMove) and m.at > 0 for m in moves)


def test_rollback_goes_back_to_the_previous_champion_and_records_it(
    mlflow_store: FileStore, client: MlflowClient, config: Config
) -> None:
    name = config.project.registered_model
    v1, v2 = mlflow_store.register(name, 2)
    registry.move_alias(client, name, CHAMPION, v1, "first")
    registry.move_alias(client, name, CHAMPION, v2, "second")
    assert registry.rollback_target(client, config) == v1
    move = registry.rollback(client, config, reason="v2 misbehaves")
    assert (move.from_version, move.to_version, move.reason) == (v2, v1, "v2 misbehaves")
    champion = registry.champion_version(client, config)
    assert champion is not None and str(champion.version) == v1
    # A second rollback undoes the first: the champion before the current one is v2 again.
    assert registry.rollback_target(client, config) == v2


def test_rollback_to_an_explicit_version(
    mlflow_store: FileStore, client: MlflowClient, config: Config
) -> None:
    name = config.project.registered_model
    v1, v2, v3 = mlflow_store.register(name, 3)
    for version in (v1, v2, v3):
        registry.move_alias(client, name, CHAMPION, version, "promotion")
    move = registry.rollback(client, config, to=v1)
    assert (move.from_version, move.to_version, move.reason) == (v3, v1, "rollback")


def test_rollback_refusals_name_the_reason(
    mlflow_store: FileStore, client: MlflowClient, config: Config
) -> None:
    name = config.project.registered_model
    (v1,) = mlflow_store.register(name, 1)
    with pytest.raises(RegistryError, match=r"^no earlier champion to roll back to; use --to N$"):
        registry.rollback(client, config)
    registry.move_alias(client, name, CHAMPION, v1, "first")
    with pytest.raises(RegistryError, match=r"^no earlier champion to roll back to; use --to N$"):
        registry.rollback(client, config)
    with pytest.raises(RegistryError, match=rf"^{name} has no version 9$"):
        registry.rollback(client, config, to="9")
    with pytest.raises(RegistryError, match=rf"^champion is already version {v1}$"):
        registry.rollback(client, config, to=v1)
    assert len(registry.history(client, name)) == 1  # refusals change nothing
