"""A classifier whose model calls run on a pool of Ray actors: what ``classify --ray`` uses.

:class:`ActorPoolClassifier` stands in for a :class:`~lpclassify.classifier.Classifier` in
:func:`lpclassify.runs.classify_records`: the driver reads the records (so bad records, line
numbers, ``--errors skip``, the partial files and ``--resume`` are exactly the single-process
run's), cuts the texts into ``classify_many``'s own chunks, and hands each chunk to an actor;
predictions come back in input order, with a bounded number of chunks in flight. As the
chunks are the single process's, every row -- batch calibration included -- is bit-identical
to it (the reference scores and calibration state come from :func:`lpclassify.ray.prepare`).

>>> import ray; ray.init()                                                     # doctest: +SKIP
>>> pool = ActorPoolClassifier(Classifier.from_config("topic"), workers=4, threads=2)   # doctest: +SKIP
>>> [p.label for p in pool.iter_classify(texts)]                               # doctest: +SKIP
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .errors import LpclassifyError
from .inputs import chunks
from .ray import Predictor, Snapshot, prepare

if TYPE_CHECKING:
    from .classifier import Classifier
    from .config import Config
    from .decision import Prediction
    from .inputs import Input


class ChunkActor:
    """One model, one actor: ``classify(texts)`` is ``classify_many`` on the driver's snapshot."""

    def __init__(self, snapshot: Snapshot, threads: int, n_gpu_layers: int | None = None) -> None:
        self.predictor = Predictor(snapshot, threads=threads, n_gpu_layers=n_gpu_layers)

    def classify(self, texts: list[Input]) -> list[Prediction]:
        return self.predictor.classifier.classify_many(texts)

    def ready(self) -> bool:
        return True


class ActorPoolClassifier:
    """``iter_classify`` on ``workers`` Ray actors of ``threads`` CPUs each; the rest is the driver's classifier.

    ``clf`` is the driver's classifier: it computes the reference scores once and answers for
    the config and model (fingerprints, messages). Call :meth:`close` to end the actors.
    """

    def __init__(self, clf: Classifier, *, workers: int | None = None, threads: int = 1,
                 num_gpus: float | None = None) -> None:
        import ray

        self.driver = clf
        self.backend = clf.backend
        self.snapshot = prepare(clf)
        self.threads = max(1, int(threads))
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", self.threads)) // self.threads)
        self.workers = workers
        remote = ray.remote(num_cpus=self.threads, num_gpus=num_gpus or 0)(ChunkActor)
        snapshot = ray.put(self.snapshot)
        self.actors = [remote.remote(snapshot, self.threads) for _ in range(workers)]
        self._get(ray, [actor.ready.remote() for actor in self.actors])  # a model that cannot load fails here

    @property
    def config(self) -> Config:
        return self.driver.config

    def iter_classify(self, texts: Iterable[Input], *, chunk_size: int | None = None) -> Iterator[Prediction]:
        """Predictions in input order; ``chunk_size`` as in ``Classifier.iter_classify`` (default: its chunk).

        Chunks go to the actors in turn, two queued per actor so that none waits for the driver
        (one in all for ``chunk_size=1``, an interactive stream, so that each answer comes at once).
        """
        import ray

        actors = itertools.cycle(self.actors)
        limit = 1 if chunk_size == 1 else 2 * len(self.actors)
        pending: collections.deque[Any] = collections.deque()
        for chunk in chunks(texts, chunk_size or self.snapshot.chunk):
            if len(pending) >= limit:
                yield from self._get(ray, pending.popleft())
            pending.append(next(actors).classify.remote(chunk))
        while pending:
            yield from self._get(ray, pending.popleft())

    def classify_many(self, texts: Iterable[Input]) -> list[Prediction]:
        return list(self.iter_classify(texts))

    @staticmethod
    def _get(ray: Any, refs: Any) -> Any:
        """``ray.get``, with an lpclassify error raised in an actor raised here as itself."""
        try:
            return ray.get(refs)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, LpclassifyError):
                raise cause from None
            raise
        except ray.exceptions.RayActorError as exc:
            raise LpclassifyError(f"a Ray actor died: {exc}") from None

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
        self.actors = []

