"""`python -m mlstack_api`: serve the predictor with uvicorn. The one command line of the predictor.

The local runtime, the tests, the benchmarks and `api/Dockerfile` all start it this way, so its
server flags (no `Server` header, no access log: the metrics middleware counts every request) are
set here and nowhere else.
"""

from __future__ import annotations

import argparse
import os

import uvicorn

from mlstack.config import load_config, parse_set_options
from mlstack.contract import CONFIG_ENV, LOOPBACK, PREDICTOR_APP, config_env_var


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mlstack_api", description=__doc__)
    parser.add_argument("--host", default=LOOPBACK, help="bind address (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=None, help="default: services.api_port")
    parser.add_argument("--workers", type=int, default=None, help="default: api.workers")
    parser.add_argument(
        "--config", default=None, help=f"config file (default: ${CONFIG_ENV} or mlstack.yaml)"
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument(
        "--app",
        default=PREDICTOR_APP,
        help="ASGI app to serve (default: the predictor; `make bench` swaps in its ceiling)",
    )
    args = parser.parse_args(argv)
    # The app is imported by uvicorn (in each worker), and reads its config from the environment.
    if args.config:
        os.environ[CONFIG_ENV] = str(args.config)
    try:
        overrides = parse_set_options(args.set)
        config = load_config(args.config, overrides)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    for key, value in overrides.items():
        os.environ[config_env_var(key)] = str(value)
    uvicorn.run(
        args.app,
        host=args.host,
        port=args.port if args.port is not None else config.services.api_port,
        workers=args.workers if args.workers is not None else config.api.workers,
        server_header=False,
        access_log=False,
    )


if __name__ == "__main__":
    main()
