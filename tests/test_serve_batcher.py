"""The server's micro-batcher and batch step, without FastAPI or a model: a fake run function and
tests/fakes.py's CharBackend (pure maths; the real server is tested in tests/test_serve.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from fakes import CharBackend

from lpclassify import Classifier
from lpclassify.serve.batcher import Batcher, BatchStats, Dropped
from lpclassify.serve.errors import Overloaded, ShuttingDown
from lpclassify.serve.inference import run_batch

CONFIG = {"name": "toy", "prompt": "Review: {text}\nSentiment:", "labels": {
    "positive": {"completions": [" positive"]}, "negative": {"completions": [" negative"]}},
    "scoring": {"calibration": "contextual"}, "runtime": {"empty_text": "abstain", "batch_size": 2}}


class Recorder:
    """A run function that records its calls and answers each item with (key, item)."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[tuple[object, list[list[object]]]] = []
        self.gate = gate

    def __call__(self, key, jobs, stop):  # type: ignore[no-untyped-def]
        if self.gate is not None:
            self.gate.wait(5)
        self.calls.append((key, [list(items) for items in jobs]))
        return [[(key, item) for item in items] for items in jobs]


def test_concurrent_jobs_share_one_call_and_get_their_own_results() -> None:
    run = Recorder()

    async def main() -> list[object]:
        batcher = Batcher(run, max_batch_size=64, max_wait_s=0.05)
        batcher.start()
        futures = [batcher.submit("k", [f"t{i}a", f"t{i}b"]) for i in range(10)]
        results = await asyncio.gather(*futures)
        await batcher.close()
        return results

    results = asyncio.run(main())
    assert len(run.calls) == 1 and len(run.calls[0][1]) == 10
    assert results == [[("k", f"t{i}a"), ("k", f"t{i}b")] for i in range(10)]


def test_batches_respect_the_size_bound_and_keys() -> None:
    run = Recorder()

    async def main() -> None:
        batcher = Batcher(run, max_batch_size=4, max_wait_s=0.05)
        batcher.start()
        futures = [batcher.submit("a" if i % 2 else "b", [i, i]) for i in range(8)]
        await asyncio.gather(*futures)
        await batcher.close()

    asyncio.run(main())
    for key, jobs in run.calls:
        assert sum(len(items) for items in jobs) <= 4
        assert all((i % 2 == 1) == (key == "a") for items in jobs for i in items)
    assert sorted(i for _, jobs in run.calls for items in jobs for i in items[:1]) == list(range(8))


def test_a_full_queue_refuses_at_once_and_every_accepted_job_is_answered() -> None:
    gate = threading.Event()
    run = Recorder(gate)

    async def main() -> tuple[list[object], Overloaded]:
        batcher = Batcher(run, max_batch_size=1, max_wait_s=0, max_queue=3, retry_after_s=2)
        batcher.start()
        first = batcher.submit("k", [0])
        await asyncio.sleep(0.05)  # the worker took the first job and is blocked in run
        accepted = [first] + [batcher.submit("k", [i]) for i in range(1, 4)]
        with pytest.raises(Overloaded) as refused:
            batcher.submit("k", [99])
        gate.set()
        results = await asyncio.gather(*accepted)
        await batcher.close()
        return results, refused.value

    results, refused = asyncio.run(main())
    assert refused.status == 429 and refused.headers["Retry-After"] == "2"
    assert results == [[("k", i)] for i in range(4)]


def test_cancelled_jobs_are_dropped_before_they_run() -> None:
    gate = threading.Event()
    run = Recorder(gate)
    stats: list[BatchStats] = []

    async def main() -> None:
        batcher = Batcher(run, max_batch_size=1, max_wait_s=0, on_batch=stats.append)
        batcher.start()
        first = batcher.submit("k", ["first"])
        await asyncio.sleep(0.05)
        gone = batcher.submit("k", ["gone"])
        gone.cancel()  # the caller timed out while the model was busy
        kept = batcher.submit("k", ["kept"])
        gate.set()
        await asyncio.gather(first, kept)
        await batcher.close()

    asyncio.run(main())
    assert [jobs for _, jobs in run.calls] == [[["first"]], [["kept"]]]
    assert sum(s.dropped for s in stats) == 1


def test_an_error_fails_only_its_batch() -> None:
    def run(key, jobs, stop):  # type: ignore[no-untyped-def]
        if key == "bad":
            raise ValueError("broken batch")
        return [list(items) for items in jobs]

    async def main() -> tuple[BaseException | None, object]:
        batcher = Batcher(run, max_wait_s=0)
        batcher.start()
        bad = batcher.submit("bad", [1])
        good = batcher.submit("good", [2])
        results = await asyncio.gather(bad, good, return_exceptions=True)
        await batcher.close()
        return results[0], results[1]  # type: ignore[return-value]

    bad, good = asyncio.run(main())
    assert isinstance(bad, ValueError) and good == [2]


def test_a_wrong_number_of_results_is_an_error_not_a_hang() -> None:
    async def main() -> BaseException:
        batcher = Batcher(lambda key, jobs, stop: [], max_wait_s=0)
        batcher.start()
        with pytest.raises(RuntimeError, match="0 results for 1 jobs") as raised:
            await batcher.submit("k", [1])
        await batcher.close()
        return raised.value

    asyncio.run(main())


def test_close_finishes_accepted_jobs_then_refuses() -> None:
    gate = threading.Event()
    run = Recorder(gate)

    async def main() -> list[object]:
        batcher = Batcher(run, max_batch_size=2, max_wait_s=0)
        batcher.start()
        futures = [batcher.submit("k", [i]) for i in range(5)]
        closing = asyncio.ensure_future(batcher.close())
        await asyncio.sleep(0.01)
        with pytest.raises(ShuttingDown):
            batcher.submit("k", [9])
        gate.set()
        await closing
        return [f.result() for f in futures]

    assert asyncio.run(main()) == [[("k", i)] for i in range(5)]


@pytest.mark.parametrize("calibration", ["contextual", "batch", "none"])
def test_a_shared_batch_answers_each_job_as_classify_many_alone(calibration: str) -> None:
    config = {**CONFIG, "scoring": {"calibration": calibration}}
    clf = Classifier.from_config(config, backend=CharBackend(length_penalty=1.0))
    jobs = [["good film", "bad plot", "", "so good"], ["awful and bad"] * 3 + ["good"] * 20, ["", "fine"]]
    results = run_batch(clf, jobs)
    for items, result in zip(jobs, results, strict=True):
        expected = clf.classify_many(items)
        assert [p.label for p in result.predictions] == [p.label for p in expected]
        assert [_exact(p.probabilities) for p in result.predictions] == [_exact(p.probabilities) for p in expected]
        assert [p.abstained for p in result.predictions] == [p.abstained for p in expected]
        assert result.prompt_tokens > 0


def _exact(probabilities: dict[str, float]) -> dict[str, float | None]:
    """Probabilities compared exactly, NaN (an abstention on an empty text) as None."""
    return {name: None if p != p else p for name, p in probabilities.items()}


def test_a_running_batch_whose_callers_all_gave_up_is_told_to_stop() -> None:
    stopped = threading.Event()
    stats: list[BatchStats] = []

    def run(key, jobs, stop):  # type: ignore[no-untyped-def]
        if not stop.wait(5):  # a long batch, checking between its model calls
            return [None for _ in jobs]
        stopped.set()
        raise Dropped

    async def main() -> None:
        batcher = Batcher(run, max_wait_s=0, on_batch=stats.append)
        batcher.start()
        future = batcher.submit("k", [1, 2, 3])
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(future, 0.05)  # the caller's timeout cancels its future
        await batcher.close()

    asyncio.run(main())
    assert stopped.is_set() and sum(s.dropped for s in stats) == 1


def test_run_batch_can_stop_between_slices() -> None:
    clf = Classifier.from_config(CONFIG, backend=CharBackend())
    stop = threading.Event()
    stop.set()
    with pytest.raises(Dropped):
        run_batch(clf, [["good"] * 50], stop)
