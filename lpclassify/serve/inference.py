"""What the model thread does with a batch: score every job's texts in one pass, decide per job.

Exactness: a text's raw scores do not depend on which texts share its decode (the engine's
batch invariance, tests/test_backend.py), and each job's probabilities and decisions are computed
from its own rows only, in the chunks :meth:`Classifier.classify_many` would make. So every
response equals ``classify_many`` on that request's texts alone, bit for bit.

Batch calibration (``scoring.calibration: batch``) therefore means *per request*: a request's texts
are the batch whose mean divides the probabilities (chunked as ``classify_many`` chunks them),
never other clients' texts that happened to share the decode.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..classifier import Classifier
from ..decision import Prediction
from ..errors import InputError
from ..inputs import Input, is_blank
from ..scorer import EncodedInputs
from ..scores import RawScores
from .batcher import Dropped


@dataclass(frozen=True)
class JobResult:
    predictions: list[Prediction]
    prompt_tokens: int


def check_inputs(clf: Classifier, items: Sequence[Input], param: str = "input") -> None:
    """Refuse a request's bad items before they are queued: wrong type, a missing field, an empty text."""
    abstain = clf.config.runtime.empty_text == "abstain"
    for i, item in enumerate(items):
        where = f"{param}[{i}]" if len(items) > 1 else param
        try:
            clf.scorer.prompter.values(item)
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
        if is_blank(item) and not abstain:
            raise InputError(f"{where}: empty text: nothing to classify (a config with runtime.empty_text: abstain "
                             "abstains on empty texts instead)")


def empty_prediction(clf: Classifier) -> Prediction:
    """What ``classify_many`` answers for an empty text under ``runtime.empty_text: abstain``."""
    return Prediction(None, {name: float("nan") for name in clf.config.label_names}, abstained=True,
                      reason="empty text")


def run_batch(clf: Classifier, jobs: list[Sequence[Input]], stop: threading.Event | None = None) -> list[JobResult]:
    """Every job's predictions: one model pass over all their non-empty texts (the batcher's ``run``).

    The pass goes in slices of ``clf.chunk_size()`` texts; between slices, a set ``stop`` (every
    caller gave up) drops the rest (:class:`~lpclassify.serve.batcher.Dropped`).
    """
    clf.calibrator.prepare()  # reference scores (content-free inputs...), once per classifier
    live = [[i for i, item in enumerate(items) if not is_blank(item)] for items in jobs]
    encoded = [clf.scorer.encode_inputs([items[i] for i in rows]) for items, rows in zip(jobs, live, strict=True)]
    inputs = [piece for enc in encoded for piece in _split(enc)]
    size = clf.chunk_size()
    parts = []
    for start in range(0, len(inputs), size):
        if stop is not None and stop.is_set():
            raise Dropped
        parts.append(clf.scorer.score_encoded(EncodedInputs.concat(inputs[start:start + size])))
    raw = RawScores.concat(parts) if parts else None
    results = []
    offset = 0
    for items, rows, enc in zip(jobs, live, encoded, strict=True):
        results.append(JobResult(_decide(clf, items, raw, offset), enc.prompt_tokens))
        offset += len(rows)
    return results


def _split(encoded: EncodedInputs) -> list[EncodedInputs]:
    """One :class:`EncodedInputs` per input (with all its windows)."""
    out = []
    start = 0
    for count, cut in zip(encoded.n_chunks, encoded.truncated, strict=True):
        out.append(EncodedInputs(encoded.windows[start:start + count], [count], [cut]))
        start += count
    return out


def _decide(clf: Classifier, items: Sequence[Input], raw: RawScores | None, offset: int) -> list[Prediction]:
    """One job's predictions from its rows of ``raw`` (starting at ``offset``), chunk by chunk as
    ``classify_many`` decides them."""
    size = clf.chunk_size()
    out: list[Prediction] = []
    for start in range(0, len(items), size):
        chunk = items[start:start + size]
        n_live = sum(1 for item in chunk if not is_blank(item))
        rows = raw.rows(np.arange(offset, offset + n_live)) if raw is not None and n_live else None
        if rows is not None:  # scoring.rerank: each text's top labels scored again, per chunk as classify_many does
            rows = clf.rerank(rows, [item for item in chunk if not is_blank(item)])
        decided = iter(clf.decide(rows) if rows is not None else ())
        offset += n_live
        out.extend(next(decided) if not is_blank(item) else empty_prediction(clf) for item in chunk)
    return out
