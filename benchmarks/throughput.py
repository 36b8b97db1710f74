"""Engine vs. reference loop on real data, measured side by side in one run.

    python benchmarks/throughput.py --n 200                  # both models, AG News + SST-2
    python benchmarks/throughput.py --n 50 --models smollm2-135m --json out.json

For each model and data set it classifies the same N texts three ways:

* the reference loop (the oracle): every prompt + completion evaluated alone, from an empty context;
* the prompt-once loop (``prompt_once.py``): what a careful llama-cpp-python user writes, each
  text's prompt decoded once and its KV state reused for every completion;
* the engine.

It reports texts/s of each, the engine's speed-up over both loops, tokens decoded per text,
the minimal token count (prompt tokens not cached + trie tokens), the model's raw
prompt-processing rate measured in the same run, efficiency = (minimal tokens / engine
seconds) / raw rate, exactness (max |engine - oracle| per completion score, label agreement;
the same for the prompt-once loop) and peak RSS (before the prompt-once loop loads its own copy
of the model). Each model runs in its own process so peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
SETS = {"agnews": ("agnews.jsonl", "topic.yaml"), "sst2": ("sst2.jsonl", "sentiment.yaml")}


def read_texts(name: str, n: int) -> list[str]:
    path = DATA / SETS[name][0]
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line)["text"] for _, line in zip(range(n), handle, strict=False)]


def minimal_tokens(encoded, n_pinned: int) -> int:  # type: ignore[no-untyped-def]
    """Prompt tokens past the cache plus one token per distinct fed trie node."""
    total = 0
    for text in encoded:
        fed = {c.tokens[:d] for c in text.candidates for d in range(1, len(c.tokens))}
        total += len(text.prompt) - n_pinned + len(fed)
    return total


def prompt_rate(backend, n_tokens: int = 512, repeats: int = 3) -> float:  # type: ignore[no-untyped-def]
    """The model's raw prompt-processing rate (tokens/s): one long synthetic sequence in one decode.

    The physical limit the engine is measured against; the oracle path decodes a prompt alone in
    one batch, so timing it on a synthetic prompt with a one-token continuation measures exactly that.
    """
    from lpclassify.tokenization import Candidate, EncodedText

    tokens = tuple([backend.vocab.bos] + [1000 + k % 5000 for k in range(1, n_tokens)])
    text = EncodedText(prompt=tokens[:-1], candidates=(Candidate("", tokens[-1:], 1),))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        backend.score_reference([text])
        best = min(best, time.perf_counter() - start)
    return (n_tokens - 1) / best


def logit_row_cost(backend, n_tokens: int = 64, rows: int = 56, repeats: int = 3) -> float:  # type: ignore[no-untyped-def]
    """Seconds one more logit row costs: the same tokens decoded alone, reading one row or ``rows``.

    Each row is a product with the output matrix and a log-softmax over the vocabulary (on Gemma 3
    a 262,144-word matrix, more than the rest of the model), so the rows a label set needs put a
    floor under its time that the raw prompt rate does not see. Many rows in one decode: the
    cheapest a row gets, so the floor it gives is a lower bound.
    """
    from lpclassify.tokenization import Candidate, EncodedText

    tokens = tuple([backend.vocab.bos] + [1000 + (37 * k) % 5000 for k in range(1, n_tokens)])

    def best(read: int) -> float:
        text = EncodedText(prompt=tokens[:-read], candidates=(Candidate("", tokens[-read:], read),))
        fastest = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            backend.score_reference([text])
            fastest = min(fastest, time.perf_counter() - start)
        return fastest

    return max(0.0, (best(rows) - best(1)) / (rows - 1))


def run_model(model: str, n: int, threads: int | None, batch_size: int | None, sets: list[str],
              rate_tokens: int = 512, rate_repeats: int = 3) -> list[dict]:
    sys.path.insert(0, str(ROOT))
    from prompt_once import PromptOnce

    from lpclassify import Classifier

    rows = []
    encoded_sets = {}
    for name in sets:
        runtime = ({"batch_size": batch_size} if batch_size else {}) | ({"threads": threads} if threads else {})
        clf = Classifier.from_config(ROOT / "configs" / SETS[name][1], model=model, **runtime)
        backend = clf.backend
        texts = read_texts(name, n)
        encoded = [clf.encode(t)[0] for t in texts]
        rates = [prompt_rate(backend, rate_tokens, rate_repeats)]

        before = backend.stats.tokens_decoded  # type: ignore[attr-defined]
        start = time.perf_counter()
        reference = backend.score_reference(encoded)
        reference_s = time.perf_counter() - start
        reference_tokens = backend.stats.tokens_decoded - before  # type: ignore[attr-defined]
        rates.append(prompt_rate(backend, rate_tokens, rate_repeats))

        before = backend.stats.tokens_decoded  # type: ignore[attr-defined]
        padding_before = backend.stats.padding_tokens  # type: ignore[attr-defined]
        start = time.perf_counter()
        engine = backend.score(encoded, prefix=clf.scorer.prefix)
        engine_s = time.perf_counter() - start
        engine_tokens = backend.stats.tokens_decoded - before  # type: ignore[attr-defined]
        padding = backend.stats.padding_tokens - padding_before  # type: ignore[attr-defined]
        # The machine is shared and noisy: the raw rate is the best of measurements taken before,
        # between and after the two runs, which makes the efficiency a conservative figure.
        rates.append(prompt_rate(backend, rate_tokens, rate_repeats))
        raw_rate = max(rates)
        minimal = minimal_tokens(encoded, backend.n_pinned)  # type: ignore[attr-defined]

        # scored tokens only: the engine leaves a candidate's unscored leading tokens unread (NaN)
        worst = max(float(np.abs(e[len(e) - c.n_scored:] - r[len(r) - c.n_scored:]).max())
                    for text, et, rt in zip(encoded, engine, reference, strict=True)
                    for c, e, r in zip(text.candidates, et, rt, strict=True))
        agree = _labels(clf, texts, engine) == _labels(clf, texts, reference)
        rows.append({
            "model": model, "dataset": name, "n": n, "batch_size": backend.batch_size,  # type: ignore[attr-defined]
            "reference_texts_per_s": n / reference_s, "engine_texts_per_s": n / engine_s,
            "speedup": reference_s / engine_s,
            "reference_tokens_per_text": reference_tokens / n, "engine_tokens_per_text": engine_tokens / n,
            "padding_tokens_per_text": padding / n, "minimal_tokens_per_text": minimal / n,
            "raw_rate_tokens_per_s": raw_rate, "raw_rates": rates, "efficiency": (minimal / engine_s) / raw_rate,
            "max_abs_diff_nats": worst, "same_label": float(np.mean(agree)),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        })
        encoded_sets[name] = (clf, texts, encoded, reference, reference_s)
    # The prompt-once loop last, on its own copy of the model: loading it earlier would count in
    # the engine's peak RSS.
    first_clf = encoded_sets[sets[0]][0]
    loop = PromptOnce(first_clf.backend.model_path, n_ctx=first_clf.config.runtime.n_ctx,
                      threads=first_clf.backend.threads)  # type: ignore[attr-defined]
    for row, name in zip(rows, sets, strict=True):
        clf, texts, encoded, reference, reference_s = encoded_sets[name]
        loop.score(encoded[:1])  # warm-up, as the engine's pinned prefix was
        before = loop.tokens_decoded
        start = time.perf_counter()
        once = loop.score(encoded)
        once_s = time.perf_counter() - start
        worst = max(float(np.abs(o[len(o) - c.n_scored:] - r[len(r) - c.n_scored:]).max())
                    for text, ot, rt in zip(encoded, once, reference, strict=True)
                    for c, o, r in zip(text.candidates, ot, rt, strict=True))
        row.update({
            "prompt_once_texts_per_s": n / once_s, "speedup_vs_prompt_once": once_s / (n / row["engine_texts_per_s"]),
            "prompt_once_vs_reference": reference_s / once_s,
            "prompt_once_tokens_per_text": (loop.tokens_decoded - before) / n,
            "prompt_once_max_abs_diff_nats": worst,
            "prompt_once_same_label": float(np.mean(_labels(clf, texts, once) == _labels(clf, texts, reference))),
        })
    loop.close()
    return rows


def _labels(clf, texts, token_logprobs) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Labels from per-token log-probs, through the classifier's own maths."""
    from lpclassify.normalize import aggregate
    from lpclassify.scores import completion_score

    logprobs = np.array([[completion_score("", c, v).logprob
                          for c, v in zip(clf.encode(t)[0].candidates, per, strict=True)]
                         for t, per in zip(texts, token_logprobs, strict=True)])
    owners = [slot.label for slot in clf.scorer.slots]
    return aggregate(logprobs, owners, len(clf.classes_), "logsumexp").argmax(axis=1)


# The targets: speed-up per data set, efficiency, exactness, memory of the default model.
SPEEDUP_TARGET = {"agnews": 5.0, "sst2": 2.0}
EFFICIENCY_TARGET = 0.8
MAX_DIFF_NATS = 1e-3
SAME_LABEL = 0.995
PEAK_RSS_MB = 1.5 * 1024
DEFAULT_MODEL = "gemma-3-270m"


def print_targets(rows: list[dict]) -> None:
    """One line per target and row: met or missed, with the figure."""
    print("\ntargets:")
    for r in rows:
        checks = [
            (f"speed-up >= {SPEEDUP_TARGET[r['dataset']]:.0f}x", r["speedup"] >= SPEEDUP_TARGET[r["dataset"]],
             f"{r['speedup']:.1f}x"),
            (f"efficiency >= {EFFICIENCY_TARGET}", r["efficiency"] >= EFFICIENCY_TARGET, f"{r['efficiency']:.2f}"),
            (f"max |engine - oracle| <= {MAX_DIFF_NATS:g} nats", r["max_abs_diff_nats"] <= MAX_DIFF_NATS,
             f"{r['max_abs_diff_nats']:.1e}"),
            (f"same label >= {100 * SAME_LABEL:.1f}%", r["same_label"] >= SAME_LABEL, f"{100 * r['same_label']:.1f}%"),
        ]
        if r["model"] == DEFAULT_MODEL:
            checks.append(("peak RSS <= 1.5 GB", r["peak_rss_mb"] <= PEAK_RSS_MB, f"{r['peak_rss_mb']:.0f} MB"))
        for name, met, figure in checks:
            print(f"  {'met   ' if met else 'MISSED'} {r['model']} {r['dataset']}: {name} ({figure})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--models", nargs="+", default=["gemma-3-270m", "smollm2-135m"])
    parser.add_argument("--data", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--threads", type=int)
    parser.add_argument("--batch-size", type=int, help="texts per decode (default: the configs' runtime.batch_size)")
    parser.add_argument("--rate-tokens", type=int, default=512,
                        help="length of the sequence the raw prompt rate is timed on (default 512)")
    parser.add_argument("--rate-repeats", type=int, default=3,
                        help="timings of the raw rate, each time it is measured; the best is kept (default 3)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "throughput.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_model(args.worker, args.n, args.threads, args.batch_size, args.data, args.rate_tokens,
                                   args.rate_repeats)))
        return
    rows: list[dict] = []
    for model in args.models:
        command = [sys.executable, __file__, "--worker", model, "--n", str(args.n), "--data", *args.data,
                   "--rate-tokens", str(args.rate_tokens), "--rate-repeats", str(args.rate_repeats)]
        command += ["--batch-size", str(args.batch_size)] if args.batch_size else []
        command += ["--threads", str(args.threads)] if args.threads else []
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.extend(json.loads(output.strip().splitlines()[-1]))
    header = ("model", "data", "ref t/s", "prompt-once t/s", "engine t/s", "speed-up", "vs prompt-once",
              "tok/text ref", "tok/text eng", "minimal",
              "pad", "raw tok/s", "efficiency", "max|Δ| nats", "same label", "peak RSS MB")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in rows:
        print(f"| {r['model']} | {r['dataset']} | {r['reference_texts_per_s']:.2f} | "
              f"{r['prompt_once_texts_per_s']:.2f} | {r['engine_texts_per_s']:.2f} | "
              f"{r['speedup']:.2f}x | {r['speedup_vs_prompt_once']:.2f}x | "
              f"{r['reference_tokens_per_text']:.1f} | {r['engine_tokens_per_text']:.1f} | "
              f"{r['minimal_tokens_per_text']:.1f} | {r['padding_tokens_per_text']:.1f} | "
              f"{r['raw_rate_tokens_per_s']:.0f} | {r['efficiency']:.2f} | {r['max_abs_diff_nats']:.1e} | "
              f"{100 * r['same_label']:.1f}% | {r['peak_rss_mb']:.0f} |")
    print_targets(rows)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))
    print(f"saved {args.json}")


if __name__ == "__main__":
    main()
