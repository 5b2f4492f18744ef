"""One log format for every mlstack process (CLI, trigger, predictor, exporter)."""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr in the project's format (a no-op when logging is configured already)."""
    logging.basicConfig(level=level, format=LOG_FORMAT)


def configure_package_logging(*packages: str, level: int = logging.INFO) -> None:
    """Send `packages`' logs to stderr in the project's format without touching the root logger.

    For processes whose server configures its own loggers (uvicorn): when the root logger already has
    a handler, nothing changes.
    """
    if logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    for name in packages:
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(handler)
            logger.setLevel(level)
            logger.propagate = False
