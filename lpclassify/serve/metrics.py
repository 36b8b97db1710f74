"""Prometheus metrics, one registry per app (no globals): what ``GET /metrics`` shows.

Names follow one scheme (TEI's): ``lpclassify_requests_total{endpoint,code}``,
``lpclassify_errors_total{kind}``, ``lpclassify_texts_total{model}``, ``lpclassify_queue_depth``,
``lpclassify_batch_size`` (texts per engine batch, power-of-two buckets), ``lpclassify_dropped_total``
(timed-out requests dropped before they ran), ``lpclassify_label_sets_total{result=hit|miss}``,
and latency histograms ``lpclassify_{request,queue,inference}_seconds``.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .batcher import BatchStats

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SIZE_BUCKETS = tuple(float(2 ** i) for i in range(11))  # 1 ... 1024


class Metrics:
    """The app's collectors; ``queue_depth`` is read when /metrics is scraped."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, queue_depth: Callable[[], int]) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("lpclassify_requests", "HTTP requests answered", ["endpoint", "code"],
                                registry=registry)
        self.errors = Counter("lpclassify_errors", "Error answers by kind", ["kind"], registry=registry)
        self.texts = Counter("lpclassify_texts", "Texts classified", ["model"], registry=registry)
        self.dropped = Counter("lpclassify_dropped", "Requests dropped before they ran (timed out)",
                               registry=registry)
        self.label_sets = Counter("lpclassify_label_sets", "Zero-shot label sets: from the cache or built",
                                  ["result"], registry=registry)
        depth = Gauge("lpclassify_queue_depth", "Requests accepted and waiting for the model", registry=registry)
        depth.set_function(lambda: float(queue_depth()))
        self.batch_size = Histogram("lpclassify_batch_size", "Texts per engine batch", buckets=SIZE_BUCKETS,
                                    registry=registry)
        self.request_seconds = Histogram("lpclassify_request_seconds", "Request latency", ["endpoint"],
                                         buckets=LATENCY_BUCKETS, registry=registry)
        self.queue_seconds = Histogram("lpclassify_queue_seconds", "Time a request waited for its batch",
                                       buckets=LATENCY_BUCKETS, registry=registry)
        self.inference_seconds = Histogram("lpclassify_inference_seconds", "Time of one engine batch",
                                           buckets=LATENCY_BUCKETS, registry=registry)

    def batch(self, model: str, stats: BatchStats) -> None:
        """A batch ran (the batcher's ``on_batch``)."""
        if stats.dropped:
            self.dropped.inc(stats.dropped)
        if not stats.jobs:
            return
        self.texts.labels(model=model).inc(stats.items)
        self.batch_size.observe(stats.items)
        self.inference_seconds.observe(stats.inference_seconds)
        for seconds in stats.queue_seconds:
            self.queue_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
