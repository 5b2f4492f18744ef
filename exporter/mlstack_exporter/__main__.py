"""`python -m mlstack_exporter`: serve the exporter with gunicorn (one process, several threads)."""

from __future__ import annotations

import argparse

from flask import Flask
from gunicorn.app.base import BaseApplication

from mlstack.config import Config, load_config, parse_set_options
from mlstack.logs import configure_logging
from mlstack.registry import configure_fail_fast_client


class ExporterServer(BaseApplication):
    """gunicorn with one `gthread` worker: the app (and its refresher threads) is built in the worker."""

    def __init__(self, config: Config, host: str, port: int, threads: int) -> None:
        self.config = config
        self.options = {
            "bind": f"{host}:{port}",
            "workers": 1,  # metrics live in this process's memory: never more than one worker
            "worker_class": "gthread",
            "threads": threads,
            "preload_app": False,  # build the app (and start threads) after the fork, in the worker
            "timeout": 120,
            "graceful_timeout": 10,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "info",
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        from mlstack_exporter.app import create_app

        return create_app(self.config)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mlstack_exporter", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=None, help="default: services.exporter_port")
    parser.add_argument("--threads", type=int, default=4, help="request threads of the single worker")
    parser.add_argument(
        "--config", default=None, help="config file (default: $MLSTACK_CONFIG or mlstack.yaml)"
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    try:
        config = load_config(args.config, parse_set_options(args.set))
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    # Refreshes run in background threads: fail fast, so an MLflow outage shows as staleness
    # within a refresh or two instead of after MLflow's default minutes of retries.
    configure_fail_fast_client()
    configure_logging()
    port = args.port if args.port is not None else config.services.exporter_port
    ExporterServer(config, args.host, port, args.threads).run()


if __name__ == "__main__":
    main()
