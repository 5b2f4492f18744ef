"""The CLI's shared option groups: expanded into options once, handed to commands as typed objects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from mlstack.cli.options import (
    ConfigSource,
    RegistryTarget,
    RunSettings,
    TrainingOverrides,
    build_config,
    with_options,
)
from mlstack.contract import TRIGGER_DRIFT


def _app(command: Callable[..., None]) -> typer.Typer:
    app = typer.Typer()
    app.command()(command)
    app.command("noop")(lambda: None)  # two commands: typer keeps the command name
    return app


def test_groups_become_options_and_arrive_as_typed_objects(tmp_path: Path) -> None:
    seen: list[object] = []

    @with_options
    def show(
        name: Annotated[str, typer.Argument()],
        source: ConfigSource,
        target: RegistryTarget,
        settings: RunSettings,
    ) -> None:
        seen.extend([name, source, target, settings])

    config = tmp_path / "c.yaml"
    result = CliRunner().invoke(
        _app(show),
        ["show", "x", "--config", str(config), "--set", "a.b=1", "--set", "c=2", "--tracking-uri", "http://m",
         "--trigger", TRIGGER_DRIFT, "--force", "--rollback-to", " 4 "],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    name, source, target, settings = seen
    assert name == "x"
    assert source == ConfigSource(config=config, set_=["a.b=1", "c=2"])
    assert target == RegistryTarget(tracking_uri="http://m")
    assert isinstance(settings, RunSettings)
    assert settings.trigger == TRIGGER_DRIFT and settings.force and settings.rollback_version == "4"
    options = settings.pipeline_options()
    assert (options.trigger, options.force, options.rollback_to, options.runtime) == (
        "drift",
        True,
        "4",
        "local",
    )


@dataclass(frozen=True)
class Clash:
    config: Annotated[str, typer.Option()] = ""


def test_an_option_declared_twice_is_refused_at_import() -> None:
    def command(source: ConfigSource, clash: Clash) -> None:
        raise AssertionError("never called")

    with pytest.raises(TypeError, match="declared twice"):
        with_options(command)


def test_jenkins_empty_rollback_means_none() -> None:
    assert RunSettings(rollback_to="").rollback_version is None
    assert RunSettings(rollback_to="  ").pipeline_options().rollback_to is None
    assert RunSettings(build_id="").pipeline_options().build_id is None


def test_build_config_applies_file_env_set_then_named_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSTACK__GATE__FLOOR", "0.5")
    assert build_config(ConfigSource()).gate.floor == 0.5
    assert build_config(ConfigSource(set_=["gate.floor=0.6"])).gate.floor == 0.6
    config = build_config(
        ConfigSource(set_=["gate.floor=0.6"]),
        RegistryTarget(tracking_uri="http://m:1", model_name="m"),
        TrainingOverrides(floor=0.7, models="svc, knn", require_approval=True),
    )
    assert config.gate.floor == 0.7 and config.gate.require_approval
    assert (config.mlflow.tracking_uri, config.project.registered_model) == ("http://m:1", "m")
    assert [c.name for c in config.training.candidates] == ["svc", "knn"]
    # An explicit require_approval (ct schedule's own flag) wins over the group's.
    assert not build_config(
        ConfigSource(), training=TrainingOverrides(require_approval=True), require_approval=False
    ).gate.require_approval


@pytest.mark.parametrize(
    ("source", "training", "expected"),
    [
        (ConfigSource(set_=["gate.floor"]), None, "--set expects key=value"),
        (ConfigSource(set_=["gate.floor=2"]), None, "gate.floor"),
        (ConfigSource(config=Path("/no/such/file.yaml")), None, "/no/such/file.yaml"),
        (ConfigSource(), TrainingOverrides(models="no_such_model"), "no_such_model"),
    ],
)
def test_a_bad_configuration_exits_2_naming_it(
    source: ConfigSource,
    training: TrainingOverrides | None,
    expected: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(typer.Exit) as exited:
        build_config(source, training=training)
    assert exited.value.exit_code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: invalid configuration:") and expected in error
