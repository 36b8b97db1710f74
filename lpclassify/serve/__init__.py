"""``lpclassify serve``: a classification service (the ``[serve]`` extra: FastAPI, uvicorn, prometheus-client).

* :mod:`.protocol` -- the wire format (vLLM's classify shape, Hugging Face's zero-shot shape);
* :mod:`.batcher` -- cross-request micro-batching, one worker per model, a bounded queue;
* :mod:`.inference` -- a batch on the model thread: one pass, per-request decisions;
* :mod:`.service` -- served configs, label-set cache, timeouts; :mod:`.loading` -- loading them;
* :mod:`.app` -- the FastAPI routes; :mod:`.guards` -- API key and body limit; :mod:`.errors` --
  error kinds to HTTP statuses; :mod:`.metrics` -- Prometheus; :mod:`.server` -- uvicorn, draining.

>>> from lpclassify.serve import Service, create_app, load_classifiers      # doctest: +SKIP
>>> app = create_app(Service(load_classifiers(["sentiment"])))              # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use, so that the batcher (no FastAPI) works without the [serve] extra.
_EXPORTS = {"AppSettings": "app", "create_app": "app", "Batcher": "batcher", "load_classifiers": "loading",
            "Limits": "service", "Service": "service"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
