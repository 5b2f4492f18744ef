"""The CLI's shared options, defined once as typed groups, and how a command receives them.

A command declares a parameter of an options-group type (`source: ConfigSource`); `@with_options`
turns every field of that group into a command-line option and hands the command one typed object.
So `run`, `stage`, the registry and CT commands spell `--config`, `--set`, `--tracking-uri`, ... the
same way, and no command takes twenty loose arguments.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from mlstack.config import Config, load_config, parse_set_options, select_candidates
from mlstack.contract import DEFAULT_TRIGGER, EXIT_BAD_INPUT, TRIGGERS

if TYPE_CHECKING:
    from mlstack.pipeline import Options

RUNTIMES: tuple[str, ...] = ("local", "compose", "k8s")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: message` in red on stderr and exit with `code`."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def check_choice(value: str, choices: tuple[str, ...], hint: str) -> None:
    """Refuse a value outside `choices` as a bad parameter (exit 2, usage shown)."""
    if value not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {list(choices)}", param_hint=hint)


# --------------------------------------------------------------------------- option groups


@dataclass(frozen=True)
class ConfigSource:
    """Which config: the file, then env vars, then `--set` overrides."""

    config: Annotated[Path | None, typer.Option("--config", help="Config file (default: mlstack.yaml).")] = (
        None
    )
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override any config key: key.sub=value.")
    ] = None


@dataclass(frozen=True)
class RegistryTarget:
    """Which MLflow server and registered model (Jenkins' MLFLOW_TRACKING_URI and MODEL_NAME)."""

    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI.")] = None
    model_name: Annotated[str | None, typer.Option(help="Registered model name.")] = None


@dataclass(frozen=True)
class TrainingOverrides:
    """The training and gate settings Jenkins passes as build parameters."""

    experiment: Annotated[str | None, typer.Option(help="Experiment name.")] = None
    models: Annotated[
        str | None, typer.Option(help="Candidates to train, comma-separated (default: all).")
    ] = None
    primary_metric: Annotated[str | None, typer.Option(help="Primary metric.")] = None
    floor: Annotated[float | None, typer.Option(help="Gate floor.")] = None
    min_improvement: Annotated[float | None, typer.Option(help="Gate minimum improvement.")] = None
    require_approval: Annotated[bool | None, typer.Option(help="Quarantine: wait for approval.")] = None


@dataclass(frozen=True)
class RunSettings:
    """How this pipeline run was asked for: runtime, trigger and the switches of one run."""

    runtime: Annotated[str, typer.Option("--runtime", help=" | ".join(RUNTIMES))] = "local"
    force: Annotated[bool, typer.Option(help="Promote regardless of the gate (audited).")] = False
    trigger: Annotated[str, typer.Option(help=" | ".join(TRIGGERS))] = DEFAULT_TRIGGER
    build_id: Annotated[str | None, typer.Option(help="Pipeline id (Jenkins BUILD_TAG).")] = None
    skip_training: Annotated[bool, typer.Option(help="Redeploy only.")] = False
    rollback_to: Annotated[str | None, typer.Option(help="Roll the champion back to this version.")] = None
    approve: Annotated[bool, typer.Option(help="Approval given (Jenkins input step).")] = False
    dry_run: Annotated[bool, typer.Option(help="Validate arguments and print the plan only.")] = False
    verbose: Annotated[
        bool,
        typer.Option(
            help="Show every library line (MLflow, Evidently, ...) instead of <state_dir>/logs/pipeline.log."
        ),
    ] = False

    @property
    def rollback_version(self) -> str | None:
        """`--rollback-to`, with Jenkins' empty default meaning no rollback."""
        return self.rollback_to.strip() if self.rollback_to and self.rollback_to.strip() else None

    def check(self) -> None:
        """Refuse an unknown trigger or runtime (exit 2), before anything is loaded."""
        check_choice(self.trigger, TRIGGERS, "--trigger")
        check_choice(self.runtime, RUNTIMES, "--runtime")

    def pipeline_options(self) -> Options:
        from mlstack.pipeline import Options  # MLflow and pandas: not for --help or --dry-run

        return Options(
            runtime=self.runtime,
            force=self.force,
            trigger=self.trigger,
            build_id=self.build_id or None,
            skip_training=self.skip_training,
            rollback_to=self.rollback_version,
            approve=self.approve,
        )


def build_config(
    source: ConfigSource,
    target: RegistryTarget | None = None,
    training: TrainingOverrides | None = None,
    *,
    require_approval: bool | None = None,
) -> Config:
    """File, then env, then `--set`, then the named flags; exit 2 naming the problem if invalid."""
    target = target or RegistryTarget()
    training = training or TrainingOverrides()
    approval = training.require_approval if require_approval is None else require_approval
    named = {
        "mlflow.tracking_uri": target.tracking_uri,
        "project.experiment": training.experiment,
        "project.registered_model": target.model_name,
        "training.primary_metric": training.primary_metric,
        "gate.floor": training.floor,
        "gate.min_improvement": training.min_improvement,
        "gate.require_approval": approval,
    }
    try:
        overrides: dict[str, Any] = parse_set_options(source.set_ or [])
        overrides.update({k: v for k, v in named.items() if v not in (None, "")})
        config = load_config(source.config, overrides)
        names = [n.strip() for n in (training.models or "").split(",") if n.strip()]
        return select_candidates(config, names)
    except (ValueError, OSError) as exc:
        fail(f"invalid configuration: {exc}", code=EXIT_BAD_INPUT)


# --------------------------------------------------------------------------- the decorator


def _group_fields(group: type) -> list[inspect.Parameter]:
    hints = typing.get_type_hints(group, include_extras=True)
    return [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
        for f in dataclasses.fields(group)
    ]


def with_options(command: Callable[..., None]) -> Callable[..., None]:
    """Expose the fields of the command's option-group parameters as options; pass it the groups.

    An option group is a frozen dataclass whose fields are `Annotated[type, typer.Option(...)]` with
    a default. Parameters of other types stay as they are (arguments, command-specific options).
    """
    hints = typing.get_type_hints(command, include_extras=True)
    signature = inspect.signature(command)
    own: list[inspect.Parameter] = []
    groups: dict[str, type] = {}
    for name, param in signature.parameters.items():
        hint = hints.get(name)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            groups[name] = hint
        else:
            own.append(param.replace(annotation=hint))
    expanded = [field for group in groups.values() for field in _group_fields(group)]
    names = [p.name for p in [*own, *expanded]]
    if len(set(names)) != len(names):
        raise TypeError(f"{command.__name__}: an option is declared twice in {names}")

    @functools.wraps(command)
    def wrapper(**values: Any) -> None:
        for name, group in groups.items():
            values[name] = group(**{f.name: values.pop(f.name) for f in dataclasses.fields(group)})
        command(**values)

    wrapper.__signature__ = signature.replace(parameters=[*own, *expanded])  # type: ignore[attr-defined]
    return wrapper
