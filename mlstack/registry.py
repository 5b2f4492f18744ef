"""The MLflow model registry: aliases, their recorded history, and rollback."""

from __future__ import annotations

import getpass
import json
import os
import time
from dataclasses import asdict, dataclass

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlstack.config import Config
from mlstack.contract import ALIAS_HISTORY_TAG_PREFIX, APPROVED_BY_ENV, BUILD_TAG_ENV
from mlstack.schema import FeatureSchema


class RegistryError(RuntimeError):
    """A registry action cannot be done (unknown version, nothing to roll back to, ...)."""


@dataclass(frozen=True)
class AliasMove:
    """One recorded alias move: the production timeline is a list of these."""

    seq: int
    alias: str
    from_version: str | None
    to_version: str | None
    at: float
    by: str
    reason: str


# MLflow's client retries a failed request for minutes by default. The services (the predictor's
# model watcher, the exporter's refreshers) retry on their own schedule, so their client fails fast;
# a value set in the environment wins.
FAIL_FAST_CLIENT_ENV: dict[str, str] = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def configure_fail_fast_client(tracking_uri: str | None = None) -> None:
    """Make this process's MLflow client fail fast (see FAIL_FAST_CLIENT_ENV) and point it at the server."""
    for key, value in FAIL_FAST_CLIENT_ENV.items():
        os.environ.setdefault(key, value)
    if tracking_uri is not None:
        mlflow.set_tracking_uri(tracking_uri)


def make_client(config: Config) -> MlflowClient:
    """A client for the configured tracking server (also used as registry)."""
    return MlflowClient(tracking_uri=config.mlflow.tracking_uri, registry_uri=config.mlflow.tracking_uri)


def alias_uri(config: Config, alias: str) -> str:
    """`models:/<registered model>@<alias>`: how a model is loaded by alias."""
    return f"models:/{config.project.registered_model}@{alias}"


def logged_schema(model_uri: str) -> FeatureSchema | None:
    """The feature schema logged in a model's metadata (None for a model logged without one)."""
    return FeatureSchema.from_model_metadata(mlflow.models.get_model_info(model_uri).metadata)


def champion_schema(client: MlflowClient, config: Config) -> FeatureSchema | None:
    """The champion's feature schema (from its model metadata), or None before the first promotion."""
    if champion_version(client, config) is None:
        return None
    mlflow.set_tracking_uri(config.mlflow.tracking_uri)
    return logged_schema(alias_uri(config, config.project.champion_alias))


def actor() -> str:
    """Who is acting: the approver Jenkins' input step names, the Jenkins build, or the local user."""
    if os.environ.get(APPROVED_BY_ENV):
        return f"jenkins-approver:{os.environ[APPROVED_BY_ENV]}"
    if os.environ.get(BUILD_TAG_ENV):
        return f"jenkins:{os.environ[BUILD_TAG_ENV]}"
    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):
        return "user:unknown"


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version behind an alias, or None when the alias (or the model) does not exist.

    Compare its `.version` through `str()`: MLflow's REST client gives "3", its SQL store 3.
    """
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}:
            return None
        raise


def champion_version(client: MlflowClient, config: Config) -> ModelVersion | None:
    """The current champion, or None before the first promotion."""
    return version_by_alias(client, config.project.registered_model, config.project.champion_alias)


def challenger_version(client: MlflowClient, config: Config) -> ModelVersion | None:
    """The current challenger, or None."""
    return version_by_alias(client, config.project.registered_model, config.project.challenger_alias)


def history(client: MlflowClient, name: str) -> list[AliasMove]:
    """Every recorded alias move of a registered model, oldest first."""
    try:
        tags = client.get_registered_model(name).tags
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise
    moves = []
    for key, raw in tags.items():
        if key.startswith(ALIAS_HISTORY_TAG_PREFIX):
            data = json.loads(raw)
            moves.append(
                AliasMove(
                    seq=int(key[len(ALIAS_HISTORY_TAG_PREFIX) :]),
                    alias=data["alias"],
                    from_version=data.get("from"),
                    to_version=data.get("to"),
                    at=float(data["at"]),
                    by=data.get("by", ""),
                    reason=data.get("reason", ""),
                )
            )
    return sorted(moves, key=lambda m: m.seq)


def record_move(
    client: MlflowClient, name: str, alias: str, old: str | None, new: str | None, reason: str
) -> AliasMove:
    """Append one move to the alias history."""
    seq = max((m.seq for m in history(client, name)), default=0) + 1
    move = AliasMove(seq, alias, old, new, time.time(), actor(), reason)
    payload = {k: v for k, v in asdict(move).items() if k != "seq"}
    payload["from"] = payload.pop("from_version")
    payload["to"] = payload.pop("to_version")
    client.set_registered_model_tag(name, f"{ALIAS_HISTORY_TAG_PREFIX}{seq:06d}", json.dumps(payload))
    return move


def move_alias(client: MlflowClient, name: str, alias: str, version: str, reason: str) -> AliasMove | None:
    """Point `alias` at `version` and record the move; None when it already points there."""
    current = version_by_alias(client, name, alias)
    old = str(current.version) if current else None
    if old == str(version):
        return None
    client.set_registered_model_alias(name, alias, str(version))
    return record_move(client, name, alias, old, str(version), reason)


def clear_alias(client: MlflowClient, name: str, alias: str, reason: str) -> AliasMove | None:
    """Remove `alias` and record it; None when it was not set."""
    current = version_by_alias(client, name, alias)
    if current is None:
        return None
    client.delete_registered_model_alias(name, alias)
    return record_move(client, name, alias, str(current.version), None, reason)


def rollback_target(client: MlflowClient, config: Config) -> str:
    """The version a rollback without --to goes back to: the champion before the current one."""
    champ = champion_version(client, config)
    moves = [
        m
        for m in history(client, config.project.registered_model)
        if m.alias == config.project.champion_alias and m.to_version
    ]
    current = str(champ.version) if champ else None
    for move in reversed(moves):
        if move.to_version == current and move.from_version and move.from_version != current:
            return move.from_version
    raise RegistryError("no earlier champion to roll back to; use --to N")


def rollback(
    client: MlflowClient, config: Config, to: str | None = None, reason: str = "rollback"
) -> AliasMove:
    """Move the champion back to `to` (or the previous champion) and record it."""
    name = config.project.registered_model
    target = str(to) if to else rollback_target(client, config)
    try:
        client.get_model_version(name, target)
    except MlflowException as exc:
        raise RegistryError(f"{name} has no version {target}") from exc
    move = move_alias(client, name, config.project.champion_alias, target, reason)
    if move is None:
        raise RegistryError(f"champion is already version {target}")
    return move
