"""The served classifiers: configs loaded at start, label sets built on request, a batcher per model.

A :class:`Service` owns one :class:`~lpclassify.serve.batcher.Batcher` per loaded model file
(configs on the same model share its backend and its worker) and an LRU cache of label-set
classifiers for the zero-shot endpoint, so a repeated ``candidate_labels`` costs no set-up.
Requests can only name configs loaded at start: nothing from the network becomes a path.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..classifier import Classifier
from ..inputs import Input
from ..labelsets import labels_config
from .batcher import Batcher, BatchStats
from .errors import BadRequest, NotFound, TimedOut, TooLarge
from .inference import JobResult, check_inputs, run_batch


@dataclass(frozen=True)
class Limits:
    """How much the server takes on; see ``lpclassify serve --help``."""

    max_batch_size: int = 64  # texts per engine batch, across requests
    max_wait_ms: float = 2.0  # how long the worker waits for more requests before a batch starts
    max_queue: int = 256  # requests waiting per model; more -> 429
    max_inputs: int = 1024  # inputs per request; more -> 413
    request_timeout_s: float = 60.0  # a request not answered by then -> 504, its work dropped
    label_cache_size: int = 64  # label sets kept ready for /v1/zero-shot


class LabelSetCache:
    """An LRU of label-set classifiers keyed by (model, labels, prompt, multi_label); thread-safe."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: collections.OrderedDict[Any, Classifier] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Any, build: Callable[[], Classifier]) -> tuple[Classifier, bool]:
        """The cached classifier for ``key`` (True) or a new one ``build`` makes (False)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key], True
        clf = build()  # outside the lock: only the model thread builds, one at a time
        with self._lock:
            self.misses += 1
            self._items[key] = clf
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return clf, False

    def __len__(self) -> int:
        return len(self._items)


class Service:
    """Served classifiers by config name, their batchers, the label-set cache."""

    def __init__(self, classifiers: Mapping[str, Classifier], limits: Limits = Limits(),
                 on_batch: Callable[[str, BatchStats], None] | None = None) -> None:
        if not classifiers:
            raise ValueError("a service needs at least one classifier")
        self.classifiers = dict(classifiers)
        self.limits = limits
        self.on_batch = on_batch
        self.label_sets = LabelSetCache(limits.label_cache_size)
        self.batchers: dict[int, Batcher] = {}  # by id(backend), created in start()
        self.model_names: dict[int, str] = {}
        for clf in self.classifiers.values():
            self.model_names.setdefault(id(clf.backend), clf.backend.identity().name or "model")

    def start(self) -> None:
        """Start a worker per model (inside the running event loop; also done on the first request, for
        hosts that skip the ASGI lifespan)."""
        limits = self.limits
        for key, name in self.model_names.items():
            if key not in self.batchers:
                report = (lambda stats, name=name: self.on_batch(name, stats)) if self.on_batch else None
                self.batchers[key] = Batcher(run_batch, max_batch_size=limits.max_batch_size,  # type: ignore[arg-type]
                                             max_wait_s=limits.max_wait_ms / 1000, max_queue=limits.max_queue,
                                             on_batch=report, name=name)
                self.batchers[key].start()

    async def close(self) -> None:
        """Finish every accepted request, then stop the workers."""
        await asyncio.gather(*(batcher.close() for batcher in self.batchers.values()))

    def queue_depth(self) -> int:
        return sum(batcher.depth for batcher in self.batchers.values())

    # ------------------------------------------------------------------ requests

    def classifier(self, name: str) -> Classifier:
        """A served config by name (404 naming the served ones otherwise)."""
        clf = self.classifiers.get(name)
        if clf is None:
            served = ", ".join(sorted(self.classifiers))
            raise NotFound(f"no config named {name!r} is served (served: {served}); configs are chosen when the "
                           "server starts (lpclassify serve -c NAME)", param="model")
        return clf

    async def label_set(self, labels: Sequence[str], prompt: str | None, multi_label: bool,
                        model: str | None) -> tuple[Classifier, bool]:
        """The classifier for a label set on a served model (cached); True when it was cached."""
        base = self.classifier(model) if model is not None else next(iter(self.classifiers.values()))
        backend = base.backend
        key = (id(backend), tuple(labels), prompt, multi_label)
        runtime = {"n_ctx": base.config.runtime.n_ctx, "batch_size": base.config.runtime.batch_size}
        # validated here (a bad label set is a 400 before the model thread is asked)
        config = labels_config(list(labels), prompt, multi_label=multi_label, runtime=runtime)
        if config.fields != ("text",):
            raise BadRequest(f"parameters.prompt must use the field {{text}} and no other (it uses "
                             f"{', '.join('{' + f + '}' for f in config.fields) or 'none'})", param="parameters.prompt")

        def build() -> Classifier:
            clf = Classifier(config, backend)
            clf.calibrator.prepare()  # the content-free scores: the set-up the cache saves
            return clf

        self.start()
        batcher = self.batchers[id(backend)]
        return await batcher.call(self.label_sets.get, key, build)

    async def classify(self, clf: Classifier, items: Sequence[Input], param: str = "input") -> JobResult:
        """Predictions for ``items``, exactly as ``clf.classify_many(items)``; batched with other requests."""
        if len(items) > self.limits.max_inputs:
            raise TooLarge(f"{len(items)} inputs in one request; the limit is {self.limits.max_inputs} "
                           "(split the request, or start the server with a higher --max-inputs)", param=param)
        if not items:
            return JobResult([], 0)
        check_inputs(clf, items, param)
        self.start()
        future = self.batchers[id(clf.backend)].submit(clf, list(items))
        try:
            return await asyncio.wait_for(future, self.limits.request_timeout_s)
        except asyncio.TimeoutError:
            raise TimedOut(f"not answered within {self.limits.request_timeout_s:g} s (the request was dropped); "
                           "retry with fewer inputs, or start the server with a higher --timeout") from None

