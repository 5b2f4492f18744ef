"""CLI commands of the continuous-training loop: the trigger endpoint, scheduled retrains, the simulator."""

from __future__ import annotations

import typer

trigger_app = typer.Typer(no_args_is_help=True, help="The local Alertmanager webhook receiver.")
ct_app = typer.Typer(no_args_is_help=True, help="Continuous training.")
simulate_app = typer.Typer(help="Send realistic (optionally drifted) traffic and feedback to the predictor.")
