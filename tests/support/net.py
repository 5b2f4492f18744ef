"""Loopback helpers: free ports and bounded waits."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import requests


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    interval: float = 0.2,
    what: str = "",
    reraise: type[BaseException] | tuple[type[BaseException], ...] = (),
) -> None:
    """Poll `predicate` until it is true, or raise TimeoutError after `timeout` seconds.

    Exceptions from `predicate` count as "not yet" (the service may not be up), except those of the
    `reraise` types: they end the wait at once (e.g. the process being waited for has exited).
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except reraise:
            raise
        except Exception as exc:  # the service may not be up yet
            last = exc
        time.sleep(interval)
    detail = f" (last error: {last!r})" if last is not None else ""
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what or predicate}{detail}")


def wait_http_ok(url: str, timeout: float = 60.0) -> None:
    """Wait until GET `url` answers 200."""
    wait_until(lambda: requests.get(url, timeout=2).status_code == 200, timeout, what=url)
