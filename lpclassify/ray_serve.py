"""The ``lpclassify serve`` app as a Ray Serve deployment: N replicas, each with its own model.

>>> from lpclassify.ray_serve import deployment, run                     # doctest: +SKIP
>>> app = deployment(["sentiment", "topic"], replicas=2, threads=2)        # doctest: +SKIP
>>> run(app, host="127.0.0.1", port=8000)                                  # doctest: +SKIP

or from the shell: ``lpclassify serve -c sentiment -c topic --ray --replicas 2``. Every replica is
the same app as a single server (:func:`lpclassify.serve.create_app`: both API shapes, micro-batching
within the replica, 429s, metrics, the API key) and loads every config's model once; Ray's proxy
spreads requests over the replicas. A replica's answers equal ``classify_many``'s bit for bit, as a
single server's do: the engine's scores do not depend on the batch, and everything a calibration
needs beyond the text (reference scores) is computed from the same model file on each replica.

Several machines: ``ray start --head`` on one, ``ray start --address HEAD:6379`` on the others (each
with the model in its cache, or a path that exists on every node), then
``lpclassify serve -c sentiment --ray HEAD:6379 --replicas 8 --host 0.0.0.0 --api-key-env KEY``.
Configs are read on the machine that starts the deployment and shipped to the replicas; a config's
``calibration_file`` must exist at the same path on every node.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from typing import Any

from ray import serve

from .config import Config, load_config
from .serve import AppSettings, Limits, Service, create_app, load_classifiers


@serve.deployment
@serve.ingress()
class LpclassifyServer:
    """One replica: the configs' models, loaded once, behind the single-server app."""

    def __init__(self, configs: Sequence[Config], model: str | None = None, runtime: dict[str, Any] | None = None,
                 limits: Limits | None = None, settings: AppSettings | None = None) -> None:
        self.classifiers = load_classifiers(list(configs), model=model, runtime=runtime)
        self.limits = limits or Limits()
        self.settings = settings or AppSettings()

    def __serve_build_asgi_app__(self) -> Any:
        return create_app(Service(self.classifiers, self.limits), self.settings)


def deployment(configs: Sequence[str | Config], *, replicas: int = 1, model: str | None = None,
               threads: int | None = None, limits: Limits | None = None, settings: AppSettings | None = None,
               num_cpus: float | None = None) -> Any:
    """A bound Ray Serve application of ``replicas`` replicas serving ``configs`` (names, paths or
    :class:`Config` objects, read here). Each replica reserves ``num_cpus`` (default: ``threads`` or 1)."""
    loaded = [load_config(spec) for spec in configs]
    runtime = {"threads": threads} if threads else None
    limits = limits or Limits()
    options = {"num_replicas": replicas, "ray_actor_options": {"num_cpus": num_cpus or threads or 1},
               "max_ongoing_requests": limits.max_queue}
    return LpclassifyServer.options(**options).bind(loaded, model, runtime, limits, settings)  # type: ignore[attr-defined]


def run(app: Any, *, host: str = "127.0.0.1", port: int = 8000, name: str = "lpclassify",
        blocking: bool = True) -> None:
    """Start Ray Serve's proxy on ``host:port`` and deploy ``app`` at ``/``; with ``blocking``, serve
    until SIGTERM or Ctrl-C, then shut the deployment down (in-flight requests finish first)."""
    serve.start(http_options={"host": host, "port": port})
    serve.run(app, name=name, route_prefix="/")
    if not blocking:
        return
    stopped = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopped.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stopped.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        serve.delete(name)
        serve.shutdown()

