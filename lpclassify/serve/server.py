"""Run the app under uvicorn until SIGTERM or Ctrl-C, then drain and return (exit status 0).

On the signal uvicorn stops accepting connections, lets the requests in flight finish, then
runs the app's shutdown, which finishes every job already queued. Unlike uvicorn's own runner,
the signal is not raised again afterwards: a server that drained cleanly has done its job.
"""

from __future__ import annotations

import contextlib
import ipaddress
import signal
from collections.abc import Iterator
from typing import Any

import uvicorn

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


class _DrainingServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run(app: Any, host: str, port: int, *, graceful_timeout_s: float | None = None, log_level: str = "warning") -> None:
    """Serve ``app`` on ``host:port`` until a signal; returns once every accepted request is answered."""
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=graceful_timeout_s)
    _DrainingServer(config).run()
