"""`mlstack feedback ...`: inspect the feedback quarantine and decide on single rows, audited.

The pipeline leaves labelled predictions that fail validation out of training and records them in the
prediction store (mlstack.quarantine). These commands show what it left out and why, and let an
operator exclude a row that passes (a wrong but plausible label) or restore one that is out of range.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from mlstack.cli.options import ConfigSource, build_config, fail, with_options

if TYPE_CHECKING:
    from mlstack.config import Config
    from mlstack.store import PredictionStore

app = typer.Typer(no_args_is_help=True, help="The feedback quarantine: list, show, exclude, restore.")

IdArg = Annotated[str, typer.Argument(help="The prediction id (`id` of a /predict answer).")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (recorded in the audit trail).")]


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


@contextmanager
def _store(cfg: Config) -> Iterator[PredictionStore]:
    from mlstack.feedback import store_exists
    from mlstack.store import PredictionStore

    if not store_exists(cfg.prediction_store_url):
        fail(f"no prediction store at {cfg.prediction_store_url} (nothing was logged yet)")
    store = PredictionStore(cfg.prediction_store_url)
    try:
        store.create_schema()
        yield store
    finally:
        store.dispose()


def _prediction(store: PredictionStore, prediction_id: str) -> dict[str, object] | None:
    import sqlalchemy as sa

    from mlstack.store import feedback, predictions

    query = (
        sa.select(predictions, feedback.c.true_label, feedback.c.ts.label("feedback_ts"))
        .outerjoin(feedback, feedback.c.prediction_id == predictions.c.id)
        .where(predictions.c.id == prediction_id)
    )
    with store.engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return dict(row) if row is not None else None


@app.command("list")
@with_options
def list_(
    source: ConfigSource,
    all_: Annotated[bool, typer.Option("--all", help="Include restored rows.")] = False,
    kind: Annotated[str | None, typer.Option(help="Only this reason (e.g. out_of_range).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows, newest first.")] = 50,
) -> None:
    """The quarantined rows: counts by reason, then one line per row (newest decision first)."""
    from mlstack.quarantine import EXCLUDED, decisions

    cfg = build_config(source)
    with _store(cfg) as store:
        table = sorted(decisions(store).values(), key=lambda d: d.decided_at, reverse=True)
    shown = [d for d in table if (all_ or d.status == EXCLUDED) and (kind is None or d.kind == kind)]
    if not shown:
        typer.echo("no quarantined feedback" + (f" of kind {kind}" if kind else ""))
        return
    counts: dict[str, int] = {}
    for item in shown:
        counts[f"{item.status} {item.kind}"] = counts.get(f"{item.status} {item.kind}", 0) + 1
    first, last = min(d.detected_at for d in shown), max(d.detected_at for d in shown)
    typer.echo(
        f"{len(shown)} rows ({', '.join(f'{k}: {n}' for k, n in sorted(counts.items()))}), "
        f"detected {_when(first)} .. {_when(last)} UTC"
    )
    typer.echo(f"{'prediction id':<34} {'status':<9} {'kind':<14} {'decided (UTC)':<20} {'by':<22} reason")
    for item in shown[:limit]:
        typer.echo(
            f"{item.prediction_id:<34} {item.status:<9} {item.kind:<14} {_when(item.decided_at):<20} "
            f"{item.decided_by[:22]:<22} {item.reason}"
        )
    if len(shown) > limit:
        typer.echo(f"... {len(shown) - limit} more (--limit)")


@app.command("show")
@with_options
def show(prediction_id: IdArg, source: ConfigSource) -> None:
    """One logged prediction: features, label, prediction, quarantine status and its audit trail."""
    from mlstack.quarantine import audit_entries, decisions

    cfg = build_config(source)
    with _store(cfg) as store:
        row = _prediction(store, prediction_id)
        if row is None:
            fail(f"no prediction {prediction_id!r} in the prediction store")
        decision = decisions(store).get(prediction_id)
        trail = audit_entries(store, prediction_id)
    typer.echo(f"prediction {prediction_id}")
    typer.echo(
        f"  served      {_when(float(str(row['ts'])))} UTC by {row['model_name']} v{row['model_version']}"
    )
    typer.echo(f"  predicted   {row['prediction']}")
    label = row["true_label"]
    typer.echo(
        f"  true label  {label} (labelled {_when(float(str(row['feedback_ts'])))} UTC)"
        if label is not None
        else "  true label  - (no feedback)"
    )
    typer.echo("  features")
    features = json.loads(str(row["features"]))
    for name, value in features.items() if isinstance(features, dict) else []:
        typer.echo(f"    {name:<30} {value}")
    if decision is None:
        typer.echo("  quarantine  - (used for training, if labelled)")
    else:
        typer.echo(
            f"  quarantine  {decision.status} ({decision.kind}) by {decision.decided_by} "
            f"at {_when(decision.decided_at)} UTC: {decision.reason}"
        )
    for entry in trail:
        typer.echo(
            f"  audit       {_when(entry['at'])} {entry['action']:<11} {entry['actor']}: {entry['reason']}"
        )


def _decide(source: ConfigSource, prediction_id: str, status: str, reason: str) -> None:
    from mlstack import registry
    from mlstack.quarantine import QuarantineError, Status, decide

    cfg = build_config(source)
    chosen: Status = "excluded" if status == "excluded" else "restored"
    with _store(cfg) as store:
        try:
            decision = decide(store, prediction_id, chosen, registry.actor(), reason)
        except QuarantineError as exc:
            fail(str(exc))
    verb = "left out of" if decision.status == "excluded" else "back in"
    typer.echo(
        f"{prediction_id}: {decision.status} by {decision.decided_by} ({reason}); {verb} the training data "
        "from the next pipeline run"
    )


@app.command("exclude")
@with_options
def exclude(prediction_id: IdArg, reason: ReasonOpt, source: ConfigSource) -> None:
    """Leave a labelled prediction out of training although it passes validation (audited)."""
    _decide(source, prediction_id, "excluded", reason)


@app.command("restore")
@with_options
def restore(
    prediction_id: IdArg, source: ConfigSource, reason: ReasonOpt = "restored by an operator"
) -> None:
    """Train on a quarantined row again (out-of-range rows only; audited)."""
    _decide(source, prediction_id, "restored", reason)
