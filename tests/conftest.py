"""Shared fixtures: the two real GGUF models, loaded once per test session.

The models come from the registry (``lpclassify models pull smollm2-135m``; the default
Gemma 3 270M ships with the package's dependencies). Tests that need one are skipped with
a clear reason when it is missing, never silently faked.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from lpclassify.errors import ModelError

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
MODEL_NAMES = {"smollm2": "smollm2-135m", "gemma": "gemma-3-270m"}


def model_path(short: str) -> Path:
    from lpclassify.models import resolve_model

    try:
        return resolve_model(MODEL_NAMES[short])
    except ModelError as exc:
        pytest.skip(f"model not available: {exc}")


@pytest.fixture(scope="session", params=["smollm2", "gemma"])
def any_model(request: pytest.FixtureRequest) -> tuple[str, Path]:
    """Each real model in turn: (short name, path)."""
    return request.param, model_path(request.param)


_backends: dict[str, object] = {}


def shared_backend(short: str):  # type: ignore[no-untyped-def]
    """One LlamaCppBackend per model for the whole session (loading costs ~0.5 s)."""
    from lpclassify.backends.llama_cpp import LlamaCppBackend

    if short not in _backends:
        _backends[short] = LlamaCppBackend(model_path(short), n_ctx=512, batch_size=8)
    return _backends[short]


@pytest.fixture(scope="session")
def smollm2_backend():  # type: ignore[no-untyped-def]
    return shared_backend("smollm2")


@pytest.fixture(scope="session")
def gemma_backend():  # type: ignore[no-untyped-def]
    return shared_backend("gemma")


@pytest.fixture(scope="session", params=["smollm2", "gemma"])
def backend(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Each real model's backend in turn."""
    return shared_backend(request.param)


@pytest.fixture(scope="module")
def smollm2() -> Iterator[str]:
    """SmolLM2's path; in-process ``cli.main`` commands asking for ``--model smollm2-135m`` share one
    loaded model (real, just not reloaded; one thread, n_ctx 2048)."""
    from lpclassify import cli
    from lpclassify.backends.llama_cpp import LlamaCppBackend
    from lpclassify.classifier import Classifier
    from lpclassify.config import Config
    from lpclassify.models import resolve_model

    try:
        path = resolve_model("smollm2-135m")
    except ModelError as exc:
        pytest.skip(f"model not available: {exc}")
    backend = LlamaCppBackend(path, threads=1)
    load_classifier = cli.load_classifier

    def reuse(config: Config, args: argparse.Namespace, model: str | None = None) -> Classifier:
        if (model or getattr(args, "model", None)) != "smollm2-135m":
            return load_classifier(config, args, model)
        if getattr(args, "batch_size", None):  # the flag still reaches the config, as it would on a fresh load
            config = replace(config, runtime=replace(config.runtime, batch_size=args.batch_size))
        return Classifier(config, backend)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "load_classifier", reuse)
        yield str(path)
    backend.close()
