"""`python -m mlstack_api`: serve the predictor with uvicorn, in one or several worker processes.

The one command line of the predictor: the local runtime, the image's CMD, the tests and the
benchmarks all start it this way (`mlstack.runtime.local.api_command`). With several workers this
parent prepares what they share before uvicorn starts them: the Prometheus multiprocess directory
(cleared, so counters start at zero with the container) and the resolved worker count.
"""

from __future__ import annotations

import argparse
import atexit
import math
import os
import shutil
import tempfile
from pathlib import Path

from mlstack.config import load_config, parse_set_options
from mlstack.contract import CONFIG_ENV, LOOPBACK, PREDICTOR_APP, PROMETHEUS_MULTIPROC_DIR_ENV, config_env_var

CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def cgroup_cpu_limit(
    v2: Path = CGROUP_V2_CPU_MAX, v1_quota: Path = CGROUP_V1_QUOTA, v1_period: Path = CGROUP_V1_PERIOD
) -> float | None:
    """The container's CPU quota in CPUs (`docker run --cpus`, a Kubernetes CPU limit), or None."""
    try:
        quota, period = v2.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(v1_quota.read_text())
        return None if quota_us <= 0 else quota_us / int(v1_period.read_text())
    except (OSError, ValueError):
        return None


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask (`taskset`, cpusets), capped by the cgroup quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        cpus = min(cpus, math.ceil(limit))
    return max(1, cpus)


def prepare_metrics_dir() -> Path:
    """The Prometheus multiprocess directory, emptied: `$PROMETHEUS_MULTIPROC_DIR` or a new temp dir.

    Cleared before any worker starts: files left by an earlier run would add its counts to this one.
    """
    given = os.environ.get(PROMETHEUS_MULTIPROC_DIR_ENV)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for entry in directory.iterdir():
            if entry.is_file():
                entry.unlink()
    else:
        directory = Path(tempfile.mkdtemp(prefix="mlstack-api-metrics-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        os.environ[PROMETHEUS_MULTIPROC_DIR_ENV] = str(directory)
    return directory


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mlstack_api", description=__doc__)
    parser.add_argument("--host", default=LOOPBACK, help="bind address (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=None, help="default: services.api_port")
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: api.workers, else one per CPU)"
    )
    parser.add_argument(
        "--config", default=None, help="config file (default: $MLSTACK_CONFIG or mlstack.yaml)"
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument(
        "--app",
        default=PREDICTOR_APP,
        help="ASGI app import string (benchmarks: a bare app on the same server)",
    )
    args = parser.parse_args(argv)
    overrides = parse_set_options(args.set)
    config = load_config(args.config, overrides)
    workers = args.workers or config.api.workers or available_cpus()
    if workers < 1:
        parser.error(f"--workers must be at least 1, got {workers}")
    # The workers build their app from the environment: hand them the same config and the count.
    if args.config:
        os.environ[CONFIG_ENV] = str(Path(args.config).resolve())
    for key, value in overrides.items():
        os.environ[config_env_var(key)] = str(value)
    os.environ[config_env_var("api.workers")] = str(workers)
    if workers > 1:
        prepare_metrics_dir()
    import uvicorn

    uvicorn.run(
        args.app,
        host=args.host,
        port=args.port or config.services.api_port,
        workers=workers,
        access_log=False,  # about 100 µs per request: a third of the budget (docs/api.md)
        server_header=False,
    )


if __name__ == "__main__":
    main()
