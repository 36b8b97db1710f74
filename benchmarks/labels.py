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


def measure(model: str, count: int, n_texts: int) -> dict:
    """One label count, in this process."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from throughput import prompt_rate

    from lpclassify import Classifier
    from lpclassify.backends.llama_cpp.planner import trie_leaves

    pool = Classifier.from_config({"prompt": PROMPT, "labels": label_names(3 * count)}, model=model)
    clf = Classifier.from_config({"prompt": PROMPT, "labels": short_label_names(count, pool)}, backend=pool.backend)
    backend = clf.backend
    texts = read_texts(n_texts)
    encoded = [clf.encode(t)[0] for t in texts]
    rates = [prompt_rate(backend)]
    backend.score(encoded[:1], prefix=clf.scorer.prefix)  # warm-up: the pinned prefix
    before = dict(backend.stats.as_dict())
    start = time.perf_counter()
    engine = backend.score(encoded, prefix=clf.scorer.prefix)
    engine_s = time.perf_counter() - start
    stats = {k: v - before[k] for k, v in backend.stats.as_dict().items()}
    pinned = backend.n_pinned
    minimal = sum(len(t.prompt) - pinned + len({c.tokens[:d] for c in t.candidates for d in range(1, len(c.tokens))})
                  for t in encoded)
    read_prefixes = sum(len({c.tokens[:d] for c in t.candidates
                             for d in range(len(c.tokens) - c.n_scored, len(c.tokens))}) for t in encoded)
    start = time.perf_counter()
    clf.classify_many(texts)
    end_to_end_s = time.perf_counter() - start
    # The reference loop on a subsample of the labels, scaled per label.
    step = max(1, count // REFERENCE_LABELS)
    picked = list(range(0, count, step))[:REFERENCE_LABELS]
    sub = [type(t)(t.prompt, tuple(t.candidates[i] for i in picked)) for t in encoded]
    start = time.perf_counter()
    oracle = backend.score_reference(sub)
    reference_s = (time.perf_counter() - start) * count / len(picked)
    rates.append(prompt_rate(backend))
    worst = max(float(np.abs(engine[k][i][-c.n_scored:] - oracle[k][j][-c.n_scored:]).max())
                for k, t in enumerate(sub) for j, (i, c) in enumerate(zip(picked, t.candidates, strict=True)))
    raw_rate = max(rates)
    return {
        "model": model, "labels": count, "texts": n_texts,
        "completion_tokens": [min(len(c.tokens) for c in encoded[0].candidates),
                              max(len(c.tokens) for c in encoded[0].candidates)],
        "branches_per_text": float(np.mean([len(trie_leaves(t)) for t in encoded])),
        "engine_texts_per_s": n_texts / engine_s, "end_to_end_texts_per_s": n_texts / end_to_end_s,
        "reference_texts_per_s": n_texts / reference_s, "speedup": reference_s / engine_s,
        "tokens_per_text": stats["tokens_decoded"] / n_texts, "minimal_tokens_per_text": minimal / n_texts,
        "padding_per_text": stats["padding_tokens"] / n_texts,
        "logit_rows_per_text": stats["logit_rows"] / n_texts, "read_prefixes_per_text": read_prefixes / n_texts,
        "decodes_per_text": stats["decode_calls"] / n_texts,
        "raw_rate_tokens_per_s": raw_rate, "efficiency": (minimal / engine_s) / raw_rate,
        "max_abs_diff_nats": worst, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
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
        if r["labels"] == 77:
            checks.append(("speed-up >= 10x", r["speedup"] >= 10, f"{r['speedup']:.1f}x"))
        if r["labels"] == 1000:
            checks.append(("speed-up >= 20x", r["speedup"] >= 20, f"{r['speedup']:.1f}x"))
            checks.append(("peak RSS <= 1.5 GB", r["peak_rss_mb"] <= 1536, f"{r['peak_rss_mb']:.0f} MB"))
        for name, met, figure in checks:
            print(f"  {'met   ' if met else 'MISSED'} {r['labels']} labels: {name} ({figure})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", nargs="+", type=int, default=COUNTS)
    parser.add_argument("--texts", type=int, default=8)
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "labels.json")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.model, args.worker, args.texts)))
        return
    rows = []
    header = ("labels", "tokens/completion", "branches", "engine t/s", "end-to-end t/s", "ref t/s", "speed-up",
              "tokens/text", "minimal", "padding", "logit rows", "read prefixes", "decodes", "raw tok/s",
              "efficiency", "max|Δ| nats", "peak RSS MB")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header), flush=True)
    for count in args.counts:
        command = [sys.executable, __file__, "--worker", str(count), "--texts", str(args.texts), "--model", args.model]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        rows.append(r)
        print(f"| {r['labels']} | {r['completion_tokens'][0]}-{r['completion_tokens'][1]} | "
              f"{r['branches_per_text']:.0f} | {r['engine_texts_per_s']:.2f} | {r['end_to_end_texts_per_s']:.2f} | "
              f"{r['reference_texts_per_s']:.4f} | {r['speedup']:.1f}x | {r['tokens_per_text']:.1f} | "
              f"{r['minimal_tokens_per_text']:.1f} | {r['padding_per_text']:.1f} | {r['logit_rows_per_text']:.1f} | "
              f"{r['read_prefixes_per_text']:.1f} | {r['decodes_per_text']:.1f} | {r['raw_rate_tokens_per_s']:.0f} | "
              f"{r['efficiency']:.2f} | {r['max_abs_diff_nats']:.1e} | {r['peak_rss_mb']:.0f} |", flush=True)
    print_targets(rows)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))
    print(f"saved {args.json}")


if __name__ == "__main__":
    main()
