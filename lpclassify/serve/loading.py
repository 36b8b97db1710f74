"""Load the served configs at start: each model file once, shared by the configs that use it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..backends.base import Backend
from ..classifier import Classifier
from ..config import Config, load_config
from ..errors import ConfigError


def load_classifiers(specs: Sequence[str | Path | Config], *, model: str | None = None, download: bool = False,
                     verbose: bool = False, runtime: dict[str, Any] | None = None,
                     open_backend: Callable[[Path, Config], Backend] | None = None) -> dict[str, Classifier]:
    """Config name -> classifier, for config files or shipped names; a model file (at one context size)
    is loaded once. ``model`` overrides every config's model; ``runtime`` their ``runtime.*`` settings."""
    from dataclasses import replace

    from ..models import resolve_model

    backends: dict[tuple[Path, int], Backend] = {}
    classifiers: dict[str, Classifier] = {}
    for spec in specs:
        config = load_config(spec)
        if runtime:
            config = replace(config, runtime=replace(config.runtime, **runtime))
        if config.name in classifiers:
            raise ConfigError(f"two served configs are named {config.name!r}; requests name configs by their "
                              "'name:', so give each a different one", source=str(spec))
        path = Path(resolve_model(model or config.model, download=download)).resolve()
        key = (path, config.runtime.n_ctx)
        if key not in backends:
            backends[key] = (open_backend or _open_llama(verbose))(path, config)
        classifiers[config.name] = Classifier(config, backends[key])
    return classifiers


def _open_llama(verbose: bool) -> Callable[[Path, Config], Backend]:
    def open_backend(path: Path, config: Config) -> Backend:
        from ..backends.llama_cpp import LlamaCppBackend

        rt = config.runtime
        return LlamaCppBackend(path, n_ctx=rt.n_ctx, batch_size=rt.batch_size, threads=rt.threads,
                               n_gpu_layers=rt.n_gpu_layers, verbose=verbose)

    return open_backend
