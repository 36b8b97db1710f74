"""Many labels: cost against the label count, engine vs. reference loop, side by side in one run.

    python benchmarks/labels.py                       # 4, 20, 77, 150, 500, 1000 labels, default model
    python benchmarks/labels.py --counts 77 1000 --texts 4 --model smollm2-135m

Label sets are real words and two-word phrases taken from AG News (../shared/data), the most
frequent first, keeping those whose completions are 1-4 tokens; the same fixed texts are classified at
every label count. Per count, in its own process (so peak RSS is its own): engine texts/s
(backend.score on pre-encoded texts) and end-to-end texts/s (classify_many), tokens decoded
per text against the minimal count (prompt tokens past the cache + one per fed trie node),
logit rows per text against the distinct read prefixes, the model's raw prompt rate measured
in the same process and the engine's efficiency against it, the reference loop (every prompt +
completion alone) timed on a subsample of the labels and scaled per label, the speed-up, the
largest |engine - oracle| on that subsample, and peak RSS. Prints the table and each target.
"""

from __future__ import annotations

import argparse
import collections
import functools
import itertools
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lpclassify import Classifier

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "agnews.jsonl"
PROMPT = "News: {text}\nTopic in one or two words:"
STOP = set(
    """that with from this have were their said will about after would which there been they more than when
    what also into over other could some them only last first year years most like just while where since
    being before under percent says new quot href http https www reuters afp target font face class fullquote
    aspx ticker investor""".split())  # noqa: SIM905 - a word list reads best as text
COUNTS = [4, 20, 77, 150, 500, 1000]
MAX_COMPLETION_TOKENS = 4
REFERENCE_LABELS = 12  # labels the reference loop is timed on, per count
TOP_KS = (1, 5)
# The second workload: configs/support_taxonomy.yaml's 110 intents ("area > intent", 3-6 tokens)
# on support messages written for this benchmark.
SUPPORT_CONFIG = ROOT / "configs" / "support_taxonomy.yaml"
SUPPORT_MESSAGES = [
    "I was billed twice this month for the same plan, can you refund one of them?",
    "My phone has had no signal at home since Tuesday, calls keep dropping.",
    "I'm flying to Spain next week, how do I turn on roaming and what does it cost per day?",
    "The engineer never showed up for my broadband installation this morning.",
    "I lost my SIM card yesterday and need a replacement sent out.",
    "I want to switch to you from my current provider but keep my number.",
    "The sports channels disappeared from my TV package after the update.",
    "How much would it cost to leave my contract eight months early?",
]


@functools.cache
def ranked_words() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """AG News's words and two-word phrases (4+ letters, no stop words), most frequent first."""
    words: collections.Counter[str] = collections.Counter()
    pairs: collections.Counter[str] = collections.Counter()
    with DATA.open(encoding="utf-8") as handle:
        for line in handle:
            tokens = re.findall(r"[a-z]+", json.loads(line)["text"].lower())
            words.update(t for t in tokens if len(t) >= 4 and t not in STOP)
            pairs.update(f"{a} {b}" for a, b in itertools.pairwise(tokens)
                         if len(a) >= 4 and len(b) >= 4 and a != b and a not in STOP and b not in STOP)
    return tuple(w for w, _ in words.most_common()), tuple(p for p, _ in pairs.most_common())


def label_names(n: int, fits: Callable[[str], bool] = lambda name: True) -> list[str]:
    """The n most frequent words (two of every five: two-word phrases) of AG News that ``fits``
    accepts, deterministic."""
    ranked_singles, ranked_doubles = ranked_words()
    singles, doubles = collections.deque(ranked_singles), collections.deque(ranked_doubles)
    names: list[str] = []
    while len(names) < n:
        source = doubles if len(names) % 5 in (1, 3) and doubles else singles
        name = source.popleft()
        if name not in names and fits(name):
            names.append(name)
    return names


def short_label_names(n: int, pool: Classifier) -> list[str]:
    """label_names(n) whose completions (" name" after the prompt) are 1-4 tokens, as ``pool``
    (a classifier over label_names(3 * n)) tokenizes them."""
    lengths = {c.completion.strip(): len(c.tokens) for c in pool.encode(read_texts(1)[0])[0].candidates}
    return label_names(n, lambda name: lengths.get(name, MAX_COMPLETION_TOKENS + 1) <= MAX_COMPLETION_TOKENS)


def read_texts(n: int) -> list[str]:
    with DATA.open(encoding="utf-8") as handle:
        return [json.loads(line)["text"] for _, line in zip(range(n), handle, strict=False)]


def workload(model: str, count: int, n_texts: int, name: str, threads: int | None = None
             ) -> tuple[Classifier, list[str]]:
    """The classifier (exhaustive search, top 5 decided) and the texts of one row."""
    from lpclassify import Classifier
    from lpclassify.config import load_config

    runtime = {"threads": threads} if threads else {}

    if name == "support":
        config = load_config(SUPPORT_CONFIG)
        clf = Classifier.from_config({"prompt": config.prompt, "labels": list(config.label_names),
                                      "decision": {"top_k": 5}}, model=model, **runtime)
        return clf, SUPPORT_MESSAGES[:n_texts]
    pool = Classifier.from_config({"prompt": PROMPT, "labels": label_names(3 * count)}, model=model, **runtime)
    labels = short_label_names(count, pool)
    return Classifier.from_config({"prompt": PROMPT, "labels": labels, "decision": {"top_k": min(5, count)}},
                                  backend=pool.backend), read_texts(n_texts)


def measure_top_k(clf: Classifier, texts: list[str], exhaustive: list, engine_s: float) -> dict:
    """scoring.search: top_k at k = 1 and 5 on the same backend: texts/s, decodes, the same top k?"""
    from dataclasses import replace

    from lpclassify import Classifier

    out: dict = {}
    backend = clf.backend
    for k in TOP_KS:
        config = replace(clf.config, scoring=replace(clf.config.scoring, search="top_k"),
                         decision=replace(clf.config.decision, top_k=min(k, len(clf.config.labels))))
        searched = Classifier(config, backend)
        searched.calibrator.prepare()  # reference scores, if any (the pinned prefix is the same)
        before = dict(backend.stats.as_dict())
        start = time.perf_counter()
        got = searched.classify_many(texts)
        seconds = time.perf_counter() - start
        decodes = backend.stats.decode_calls - before["decode_calls"]
        out[f"top{k}_texts_per_s"] = len(texts) / seconds
        out[f"top{k}_speedup_vs_exhaustive_engine"] = engine_s / seconds
        out[f"top{k}_decodes_per_text"] = decodes / len(texts)
        out[f"top{k}_same_as_exhaustive"] = all(g.labels == w.labels[:k] for g, w in zip(got, exhaustive, strict=True))
        out[f"top{k}_max_tolerance"] = max(g.tolerance or 0.0 for g in got)
    return out


def measure(model: str, count: int, n_texts: int, name: str = "agnews", quick: bool = False,
            threads: int | None = None, compare_waves: bool = False) -> dict:
    """One label count, in this process (``quick``: no reference loop, prompt-once loop or
    end-to-end run: the engine, exhaustive and searched, only; ``compare_waves``: the engine
    again with one trie branch of a text per decode, LPCLASSIFY_PACK=0's plan, on the same backend)."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from prompt_once import timed as prompt_once
    from throughput import logit_row_cost, prompt_rate

    from lpclassify.backends.llama_cpp.planner import trie_leaves

    clf, texts = workload(model, count, n_texts, name, threads)
    count = len(clf.config.labels)
    n_texts = len(texts)
    backend = clf.backend
    encoded = [clf.encode(t)[0] for t in texts]
    repeats = 1 if quick else 3
    rates = [prompt_rate(backend, repeats=repeats)]
    row_s = logit_row_cost(backend, repeats=repeats)
    backend.score(encoded[:1], prefix=clf.scorer.prefix)  # warm-up: the pinned prefix
    before = dict(backend.stats.as_dict())
    start = time.perf_counter()
    engine = backend.score(encoded, prefix=clf.scorer.prefix)
    engine_s = time.perf_counter() - start
    stats = {k: v - before[k] for k, v in backend.stats.as_dict().items()}
    waves: dict = {}
    if compare_waves:  # the same texts, one branch of a text per decode (LPCLASSIFY_PACK=0's plan), after a warm-up
        packing, backend._engine.pack = backend._engine.pack, False
        backend.score(encoded[:1], prefix=clf.scorer.prefix)
        before = dict(backend.stats.as_dict())
        start = time.perf_counter()
        wave_scores = backend.score(encoded, prefix=clf.scorer.prefix)
        waves_s = time.perf_counter() - start
        backend._engine.pack = packing
        p = {k: v - before[k] for k, v in backend.stats.as_dict().items()}
        waves = {"waves_texts_per_s": n_texts / waves_s, "waves_decodes_per_text": p["decode_calls"] / n_texts,
                 "waves_tokens_per_decode": p["tokens_decoded"] / p["decode_calls"],
                 "waves_padding_per_text": p["padding_tokens"] / n_texts, "engine_speedup_vs_waves": waves_s / engine_s,
                 "waves_seconds": waves_s,
                 "waves_bit_identical": all(np.array_equal(a, b, equal_nan=True)
                                            for x, y in zip(engine, wave_scores, strict=True)
                                            for a, b in zip(x, y, strict=True))}
    pinned = backend.n_pinned
    minimal = sum(len(t.prompt) - pinned + len({c.tokens[:d] for c in t.candidates for d in range(1, len(c.tokens))})
                  for t in encoded)
    read_prefixes = sum(len({c.tokens[:d] for c in t.candidates
                             for d in range(len(c.tokens) - c.n_scored, len(c.tokens))}) for t in encoded)
    start = time.perf_counter()
    exhaustive = clf.classify_many(texts) if not quick else []
    end_to_end_s = time.perf_counter() - start if not quick else float("nan")
    if quick:  # the exhaustive decisions from the engine's own scores
        raw = clf.raw_scores(texts)
        exhaustive = clf.decide(raw)
    top_k = measure_top_k(clf, texts, exhaustive, engine_s)
    once_rate, once_decodes, once_scores = (prompt_once(backend.model_path, encoded, n_ctx=backend.n_ctx,
                                                        threads=backend.threads) if not quick
                                            else (float("nan"), float("nan"), [[]] * n_texts))
    # The reference loop on a subsample of the labels, scaled per label.
    step = max(1, count // REFERENCE_LABELS)
    picked = list(range(0, count, step))[:REFERENCE_LABELS if not quick else 1]
    sub = [type(t)(t.prompt, tuple(t.candidates[i] for i in picked)) for t in encoded]
    start = time.perf_counter()
    oracle = backend.score_reference(sub)
    reference_s = (time.perf_counter() - start) * count / len(picked)
    rates.append(prompt_rate(backend, repeats=repeats))
    worst = max(float(np.abs(engine[k][i][-c.n_scored:] - oracle[k][j][-c.n_scored:]).max())
                for k, t in enumerate(sub) for j, (i, c) in enumerate(zip(picked, t.candidates, strict=True)))
    raw_rate = max(rates)
    return {
        "workload": name, "model": model, "labels": count, "texts": n_texts,
        "completion_tokens": [min(len(c.tokens) for c in encoded[0].candidates),
                              max(len(c.tokens) for c in encoded[0].candidates)],
        "branches_per_text": float(np.mean([len(trie_leaves(t)) for t in encoded])),
        "engine_texts_per_s": n_texts / engine_s, "end_to_end_texts_per_s": n_texts / end_to_end_s,
        "reference_texts_per_s": n_texts / reference_s, "speedup": reference_s / engine_s,
        "tokens_per_text": stats["tokens_decoded"] / n_texts, "minimal_tokens_per_text": minimal / n_texts,
        "padding_per_text": stats["padding_tokens"] / n_texts,
        "logit_rows_per_text": stats["logit_rows"] / n_texts, "read_prefixes_per_text": read_prefixes / n_texts,
        "decodes_per_text": stats["decode_calls"] / n_texts,
        "tokens_per_decode": stats["tokens_decoded"] / stats["decode_calls"],
        "raw_rate_tokens_per_s": raw_rate, "efficiency": (minimal / engine_s) / raw_rate,
        # the best efficiency the minimal work allows: its tokens at the raw rate plus its logit rows
        "logit_row_ms": row_s * 1e3,
        "efficiency_ceiling": (minimal / raw_rate) / (minimal / raw_rate + stats["logit_rows"] * row_s),
        "max_abs_diff_nats": worst, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "prompt_once_texts_per_s": once_rate, "prompt_once_decodes_per_text": once_decodes,
        "engine_vs_prompt_once": (n_texts / engine_s) / once_rate,
        # the careful user's loop decodes completions in tiny batches: other kernels, other last bits
        # (strict=False: a quick run has no prompt-once scores, and the max is then nan)
        "prompt_once_max_abs_diff_nats": max((abs(float(np.nansum(v)) - s)
                                              for e, o in zip(engine, once_scores, strict=True)
                                              for v, s in zip(e, o, strict=False)), default=float("nan")),
        **top_k,
        **waves,
        **({"waves_efficiency": (minimal / waves["waves_seconds"]) / raw_rate} if waves else {}),
    }


def print_targets(rows: list[dict]) -> None:
    print("\ntargets:")
    for r in rows:
        minimal = abs(r["tokens_per_text"] - r["minimal_tokens_per_text"]) < 1e-9
        checks = [("tokens decoded per text == minimal", minimal,
                   f"{r['tokens_per_text']:.1f} vs {r['minimal_tokens_per_text']:.1f}"),
                  ("logit rows per text == distinct read prefixes",
                   abs(r["logit_rows_per_text"] - r["read_prefixes_per_text"]) < 1e-9,
                   f"{r['logit_rows_per_text']:.1f} vs {r['read_prefixes_per_text']:.1f}"),
                  ("max |engine - oracle| <= 1e-4 nats", r["max_abs_diff_nats"] <= 1e-4,
                   f"{r['max_abs_diff_nats']:.1e}")]
        if r["labels"] >= 77:
            floor = 0.3 if r["labels"] >= 1000 else 0.5
            checks.append((f"efficiency >= {floor}", r["efficiency"] >= floor,
                           f"{r['efficiency']:.2f}; the minimal tokens and logit rows allow "
                           f"{r.get('efficiency_ceiling', float('nan')):.2f}"))
        same = (r["top1_same_as_exhaustive"], r["top5_same_as_exhaustive"])
        checks.append(("top-1 and top-5 search == exhaustive", all(same), f"{same[0]}/{same[1]}"))
        if r["labels"] == 77:
            checks.append(("speed-up >= 10x", r["speedup"] >= 10, f"{r['speedup']:.1f}x"))
        if r["labels"] == 1000:
            checks.append(("speed-up >= 20x", r["speedup"] >= 20, f"{r['speedup']:.1f}x"))
            checks.append(("top-5 search >= 10x exhaustive texts/s", r["top5_speedup_vs_exhaustive_engine"] >= 10,
                           f"{r['top5_speedup_vs_exhaustive_engine']:.1f}x"))
            checks.append(("peak RSS <= 1.5 GB", r["peak_rss_mb"] <= 1536, f"{r['peak_rss_mb']:.0f} MB"))
        for name, met, figure in checks:
            print(f"  {'met   ' if met else 'MISSED'} {r['labels']} labels: {name} ({figure})")


def provenance() -> dict:
    """The commit and machine a report was measured on."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout.strip()

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "machine": {"cpu": cpu, "cores": os.cpu_count(), "load_average": list(os.getloadavg()),
                        "python": platform.python_version(), "system": platform.platform()}}


COLUMNS = [("labels", "labels", "{}"), ("tokens/completion", "completion_tokens", "{0[0]}-{0[1]}"),
           ("branches", "branches_per_text", "{:.0f}"), ("engine t/s", "engine_texts_per_s", "{:.2f}"),
           ("end-to-end t/s", "end_to_end_texts_per_s", "{:.2f}"), ("ref t/s", "reference_texts_per_s", "{:.4f}"),
           ("speed-up", "speedup", "{:.1f}x"), ("prompt-once t/s", "prompt_once_texts_per_s", "{:.2f}"),
           ("engine/prompt-once", "engine_vs_prompt_once", "{:.1f}x"),
           ("top-1 t/s", "top1_texts_per_s", "{:.2f}"), ("top-5 t/s", "top5_texts_per_s", "{:.2f}"),
           ("top-5/exhaustive", "top5_speedup_vs_exhaustive_engine", "{:.1f}x"),
           ("same top-1/top-5", "same_top", "{}"), ("tokens/text", "tokens_per_text", "{:.1f}"),
           ("minimal", "minimal_tokens_per_text", "{:.1f}"), ("padding", "padding_per_text", "{:.1f}"),
           ("logit rows", "logit_rows_per_text", "{:.1f}"), ("read prefixes", "read_prefixes_per_text", "{:.1f}"),
           ("decodes", "decodes_per_text", "{:.1f}"), ("decodes top-1/top-5/prompt-once", "decodes", "{}"),
           ("raw tok/s", "raw_rate_tokens_per_s", "{:.0f}"), ("efficiency", "efficiency", "{:.2f}"),
           ("logit row ms", "logit_row_ms", "{:.1f}"), ("ceiling", "efficiency_ceiling", "{:.2f}"),
           ("max|Δ| nats", "max_abs_diff_nats", "{:.1e}"), ("peak RSS MB", "peak_rss_mb", "{:.0f}")]


def table_row(r: dict) -> str:
    r = {**r, "same_top": f"{r['top1_same_as_exhaustive']}/{r['top5_same_as_exhaustive']}",
         "decodes": f"{r['top1_decodes_per_text']:.1f}/{r['top5_decodes_per_text']:.1f}/"
                    f"{r['prompt_once_decodes_per_text']:.0f}"}
    return "| " + " | ".join(fmt.format(r[key]) for _, key, fmt in COLUMNS) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", nargs="+", type=int, default=COUNTS)
    parser.add_argument("--texts", type=int, default=8)
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--workload", choices=["agnews", "support"], default="agnews",
                        help="agnews: AG News words at each --counts; support: configs/support_taxonomy.yaml")
    parser.add_argument("--json", type=Path, help="default: benchmarks/reports/labels-<workload>-n<texts>.json")
    parser.add_argument("--quick", action="store_true",
                        help="the engine only (exhaustive and top-k): no reference, prompt-once or end-to-end run")
    parser.add_argument("--threads", type=int, help="llama.cpp threads (default: the runtime's)")
    parser.add_argument("--compare-waves", action="store_true",
                        help="also time the engine with one trie branch of a text per decode "
                             "(LPCLASSIFY_PACK=0's plan)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.model, args.worker, args.texts, args.workload, args.quick, args.threads,
                                 args.compare_waves)))
        return
    measured_on = provenance()  # before the run: the code the workers load
    rows = []
    print("| " + " | ".join(name for name, _, _ in COLUMNS) + " |\n|" + "---|" * len(COLUMNS), flush=True)
    for count in args.counts if args.workload == "agnews" else [1]:
        command = [sys.executable, __file__, "--worker", str(count), "--texts", str(args.texts), "--model",
                   args.model, "--workload", args.workload] + (["--quick"] if args.quick else []) \
            + (["--threads", str(args.threads)] if args.threads else []) \
            + (["--compare-waves"] if args.compare_waves else [])
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        rows.append(r)
        print(table_row(r), flush=True)
    if args.compare_waves:
        print("\none branch per decode (LPCLASSIFY_PACK=0) -> packed (default), same worker, same texts:\n"
              "| labels | decodes/text | tokens/decode | padding/text | efficiency | speed-up | bit-identical |\n"
              "|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['labels']} | {r['waves_decodes_per_text']:.1f} -> {r['decodes_per_text']:.1f} "
                  f"| {r['waves_tokens_per_decode']:.1f} -> {r['tokens_per_decode']:.1f} "
                  f"| {r['waves_padding_per_text']:.1f} -> {r['padding_per_text']:.1f} "
                  f"| {r['waves_efficiency']:.2f} -> {r['efficiency']:.2f} | {r['engine_speedup_vs_waves']:.2f}x "
                  f"| {r['waves_bit_identical']} |")
    print_targets(rows)
    path = args.json or ROOT / "benchmarks" / "reports" / f"labels-{args.workload}-n{args.texts}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**measured_on, "command": " ".join(sys.argv[1:]), "rows": rows}, indent=2))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
