"""Models loaded once per process: one llama.cpp backend per (model file, runtime settings).

Loading a model costs time and memory; a grid search fits dozens of estimators on the same
model. :func:`shared_backend` hands every caller asking for the same file (same size and
modification time) with the same context size, batch size, threads and GPU layers the same
loaded backend. The backend serializes its model calls, so classifiers may share it.

This is the process's one cache of loaded models: the estimator, ``Classifier.from_config(...,
shared)`` callers, ``lpclassify validate`` (one load for every config that uses a model) and the
test session (tests/conftest.py) all go through it. A caller that hands a backend out for the
rest of the process (the test session's fixtures) pins it (``pin=True``): :func:`release_shared` then
leaves it loaded unless asked with ``pinned=True``.

>>> backend = shared_backend("models/smollm2.gguf", n_ctx=1024)            # doctest: +SKIP
>>> backend is shared_backend("models/smollm2.gguf", n_ctx=1024)           # doctest: +SKIP
True
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from .base import ModelIdentity

if TYPE_CHECKING:
    from ..config.schema import Runtime
    from .llama_cpp import LlamaCppBackend

Key = tuple[ModelIdentity, int, int, int | None, int]

_lock = threading.Lock()
_loaded: dict[Key, LlamaCppBackend] = {}
_pinned: set[Key] = set()


def shared_backend(path: str | os.PathLike[str], *, n_ctx: int, batch_size: int = 8, threads: int | None = None,
                   n_gpu_layers: int = 0, verbose: bool = False, pin: bool = False) -> LlamaCppBackend:
    """The process's backend for this model file and these settings, loaded on first use (``pin``: kept by
    :func:`release_shared` unless it is asked to free pinned ones too)."""
    key: Key = (ModelIdentity.of_file(path), n_ctx, batch_size, threads, n_gpu_layers)
    with _lock:
        backend = _loaded.get(key)
        if backend is None:
            from .llama_cpp import LlamaCppBackend  # loads llama.cpp's shared library

            backend = LlamaCppBackend(path, n_ctx=n_ctx, batch_size=batch_size, threads=threads,
                                      n_gpu_layers=n_gpu_layers, verbose=verbose)
            _loaded[key] = backend
        if pin:
            _pinned.add(key)
        return backend


def runtime_backend(path: str | os.PathLike[str], runtime: Runtime, *, shared: bool = False,
                    threads: int | None = None, n_gpu_layers: int | None = None,
                    verbose: bool = False) -> LlamaCppBackend:
    """The one way a backend is built from ``runtime.*`` settings (context size, batch size, threads,
    GPU layers; ``threads``/``n_gpu_layers`` given here win): a fresh one, or with ``shared`` the
    process's (:func:`shared_backend`). ``Classifier.from_config``, Ray's actors and the estimator use it."""
    settings = {"n_ctx": runtime.n_ctx, "batch_size": runtime.batch_size,
                "threads": threads if threads is not None else runtime.threads,
                "n_gpu_layers": n_gpu_layers if n_gpu_layers is not None else runtime.n_gpu_layers}
    if shared:
        return shared_backend(path, **settings, verbose=verbose)  # type: ignore[arg-type]
    from .llama_cpp import LlamaCppBackend  # loads llama.cpp's shared library

    return LlamaCppBackend(path, **settings, verbose=verbose)  # type: ignore[arg-type]


def loaded_count() -> int:
    """How many backends this process holds (what tests check to see a model was loaded once)."""
    with _lock:
        return len(_loaded)


def release_shared(*, pinned: bool = False) -> None:
    """Free the shared backends now, pinned ones too only with ``pinned`` (the next :func:`shared_backend`
    call for a freed one loads it again)."""
    with _lock:
        keys = [key for key in _loaded if pinned or key not in _pinned]
        backends = [_loaded.pop(key) for key in keys]
        _pinned.difference_update(keys)
    for backend in backends:
        backend.close()
