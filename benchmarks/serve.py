"""The server against ``classify_many``: the same texts, 1, 8 and 32 concurrent HTTP clients, one run.

    python benchmarks/run.py --only serve                     # the report: benchmarks/reports/serve.json
    python benchmarks/serve.py --n 600 --model gemma-3-270m --threads 2 --json out.json
    python benchmarks/serve.py --n 16 --model smollm2-135m --threads 1 --json out.json   # does it work?

SST-2 rows 0..n-1 (../shared/data). In this process, before and after the server runs (the machine
may be shared; the better of the two is the baseline): ``classify_many`` over all the texts (the
throughput to match) and each of the first ``--alone`` texts alone (default: all of them), the model
time of a one-text request. In between, an ``lpclassify serve`` process on the same model and threads;
per concurrency, clients (asyncio tasks sharing one httpx connection pool) send one text per request
until every text is done.

Reported per concurrency: texts/s and its ratio to classify_many, p50/p95/p99 latency, the mean
engine batch (from /metrics), whether every answer equals classify_many's bit for bit; the one-client
median latency over the texts timed alone minus their median model time (the server's overhead);
and the peak RSS of the server and of the in-process run. Targets: throughput at 32 clients >= 0.85x
classify_many; at 1 client the median latency within 10 ms of the median model time. ``run.py``
wraps the JSON with the commit, the machine and the command (benchmarks/reports/serve.json) and
``render.py`` makes the docs' table of it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "sst2.jsonl"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def rows_of(predictions, names) -> list:  # type: ignore[no-untyped-def]
    return [(p.label, [p.probabilities[n] for n in names]) for p in predictions]


def in_process(texts: list[str], config: str, model: str, threads: int, alone: int) -> dict[str, object]:
    """``classify_many`` over ``texts`` (texts/s), then each of the first ``alone`` texts alone (the model
    time of a one-text request), in this process."""
    from lpclassify import Classifier

    clf = Classifier.from_config(config, model, threads=threads)
    clf.classify_many(texts[:8])  # warm-up: reference scores, caches
    start = time.perf_counter()
    predictions = clf.classify_many(texts)
    seconds = time.perf_counter() - start
    times = []
    for text in texts[:alone]:
        t0 = time.perf_counter()
        clf.classify_many([text])
        times.append(time.perf_counter() - t0)
    rows = rows_of(predictions, clf.config.label_names)
    clf.backend.close()  # type: ignore[attr-defined]
    return {"texts_per_s": len(texts) / seconds, "seconds": seconds, "alone_texts": len(times),
            "model_ms_median": 1000 * statistics.median(times),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rows": rows,
            "alone_ms": [1000 * t for t in times]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def mean_batch(metrics: str) -> tuple[float, float]:
    total = count = 0.0
    for line in metrics.splitlines():
        if line.startswith("lpclassify_batch_size_sum"):
            total = float(line.split()[-1])
        elif line.startswith("lpclassify_batch_size_count"):
            count = float(line.split()[-1])
    return total, count


async def load(url: str, texts: list[str], config: str, clients: int) -> tuple[float, list[float], list]:
    """``clients`` concurrent clients, one text per request, until every text is answered: the seconds it
    took, each text's latency (by text) and each text's (label, probs)."""
    import httpx

    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(texts)):
        queue.put_nowait(i)
    latencies: list[float] = [float("nan")] * len(texts)
    rows: list = [None] * len(texts)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                t0 = time.perf_counter()
                response = await client.post("/v1/classify", json={"model": config, "input": [texts[i]]})
                latencies[i] = time.perf_counter() - t0
                response.raise_for_status()
                data = response.json()["data"][0]
                rows[i] = (data["label"], data["probs"])

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return time.perf_counter() - start, latencies, rows


def wait_for(server: subprocess.Popen[bytes], url: str, seconds: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"serve.py: the server exited with {server.returncode} before answering /health")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    sys.exit(f"serve.py: the server did not answer /health within {seconds:.0f} s")


def main() -> None:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=600, help="SST-2 texts (default 600)")
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--config", default="sentiment")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--alone", type=int, default=0,
                        help="texts timed alone in process for the model time, the first ones (default 0: all)")
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "serve.json",
                        help="where the results go (run.py wraps them as benchmarks/reports/serve.json)")
    args = parser.parse_args()
    with DATA.open(encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for _, line in zip(range(args.n), f, strict=False)]
    alone = min(args.alone or len(texts), len(texts))

    before = in_process(texts, args.config, args.model, args.threads, alone)
    print(f"classify_many: {before['texts_per_s']:.1f} texts/s; one text alone: median "
          f"{before['model_ms_median']:.1f} ms", flush=True)
    port = free_port()
    command = [sys.executable, "-m", "lpclassify", "serve", "-c", args.config, "--model", args.model,
               "--threads", str(args.threads), "--port", str(port), "--max-wait-ms", str(args.max_wait_ms),
               "--max-queue", "1024", "--timeout", "3600"]
    server = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = f"http://127.0.0.1:{port}"
    results = []
    latencies_1: list[float] = []
    try:
        wait_for(server, url)
        asyncio.run(load(url, texts[:8], args.config, 1))  # warm-up
        for clients in args.clients:
            start = mean_batch(httpx.get(f"{url}/metrics").text)
            seconds, latencies, rows = asyncio.run(load(url, texts, args.config, clients))
            counts = mean_batch(httpx.get(f"{url}/metrics").text)
            batches = counts[1] - start[1]
            entry = {"clients": clients, "texts_per_s": len(texts) / seconds,
                     "p50_ms": 1000 * percentile(latencies, 50), "p95_ms": 1000 * percentile(latencies, 95),
                     "p99_ms": 1000 * percentile(latencies, 99),
                     "mean_batch_texts": (counts[0] - start[0]) / batches if batches else 0.0, "rows": rows}
            if clients == 1:
                latencies_1 = latencies
            results.append(entry)
            print(json.dumps({k: v for k, v in entry.items() if k != "rows"}), flush=True)
        server_rss = peak_rss_mb(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server_exit = server.wait(120)
    after = in_process(texts, args.config, args.model, args.threads, alone)
    print(f"classify_many again: {after['texts_per_s']:.1f} texts/s; one text alone: median "
          f"{after['model_ms_median']:.1f} ms", flush=True)
    # The baseline is the better of the two in-process runs: the faster classify_many, and per text the
    # shorter of its two times alone.
    model_ms = [min(a, b) for a, b in zip(before["alone_ms"], after["alone_ms"], strict=True)]  # type: ignore[call-overload]
    base = {"texts_per_s": max(before["texts_per_s"], after["texts_per_s"]),  # type: ignore[type-var]
            "model_ms_median": statistics.median(model_ms), "alone_texts": alone,
            "peak_rss_mb": max(before["peak_rss_mb"], after["peak_rss_mb"])}  # type: ignore[type-var]
    for entry in results:
        entry["ratio_to_classify_many"] = entry["texts_per_s"] / base["texts_per_s"]
        entry["equal_to_classify_many"] = entry.pop("rows") == before["rows"] == after["rows"]
    top = next((r for r in results if r["clients"] == 32), None)
    # The one-client median latency over the same texts as the model time (the first `alone`).
    one_ms = 1000 * statistics.median(latencies_1[:alone]) if latencies_1 else None
    overhead = None if one_ms is None else one_ms - base["model_ms_median"]
    report = {"texts": len(texts), "model": args.model, "config": args.config, "threads": args.threads,
              "max_wait_ms": args.max_wait_ms, "classify_many": base,
              "classify_many_before": {k: v for k, v in before.items() if k not in ("rows", "alone_ms")},
              "classify_many_after": {k: v for k, v in after.items() if k not in ("rows", "alone_ms")},
              "server_peak_rss_mb": server_rss, "server_exit_status": server_exit, "runs": results,
              "one_client_median_ms": one_ms, "one_client_overhead_ms": overhead,
              "ratio_32_clients": None if top is None else top["ratio_to_classify_many"],
              "targets": {
                  "throughput_32_clients_ge_0.85x": None if top is None else top["ratio_to_classify_many"] >= 0.85,
                  "median_latency_1_client_within_10ms_of_model": None if overhead is None else overhead <= 10}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"one_client_overhead_ms": overhead, **report["targets"]}))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
