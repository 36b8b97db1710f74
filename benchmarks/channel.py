"""Channel scoring (P(input | label)) next to direct scoring (P(label | input)): cost per text and accuracy.

    python benchmarks/channel.py --n 64 --repeats 2 --out benchmarks/reports/channel.md

For each set the shipped config (direct, all its completions) and the same config turned round
(:func:`lpclassify.config.direction.as_channel`: the label's lead-in and ``{label}`` on the line
before the input), each label named by its first completion as ``tune``'s channel variants do
(a channel pass costs about one direct pass per verbalization), classify the same first N rows
on ONE loaded model, interleaved, each pass
repeated and the fastest kept: seconds per text, tokens decoded and logit rows read per text,
and the cost ratio channel / direct. Accuracy is uncalibrated for both (``calibration: none``),
plus the shipped calibration for direct, on the same scores.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
SETS = {  # name: (data file, config, label field)
    "sst2": (DATA / "sst2.jsonl", ROOT / "configs" / "sentiment.yaml", "label_name"),
    "agnews": (DATA / "agnews.jsonl", ROOT / "configs" / "topic.yaml", "label_name"),
    "questions": (ROOT / "benchmarks" / "data" / "questions.jsonl", ROOT / "benchmarks" / "data" / "questions.yaml",
                  "label"),
}


def measure(clf: Any, texts: list[str]) -> tuple[float, dict[str, int], Any]:
    backend = clf.backend
    clf.raw_scores(texts[:1])  # the prefix is pinned here, once
    before = backend.stats.as_dict()
    start = time.perf_counter()
    raw = clf.raw_scores(texts)
    seconds = time.perf_counter() - start
    after = backend.stats.as_dict()
    return seconds, {k: after[k] - before[k] for k in after}, raw


def main() -> None:
    from lpclassify import Classifier
    from lpclassify.backends.shared import shared_backend
    from lpclassify.config import load_config
    from lpclassify.config.direction import as_channel
    from lpclassify.models import resolve_model
    from lpclassify.tuning.demos import channel_completions

    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    lines = [f"# Channel vs direct scoring ({args.model}, N={args.n} per set, fastest of {args.repeats} "
             f"interleaved passes)", "", f"commit {commit}, {platform.node()}, {platform.processor() or '?'}", "",
             "| set | direction | completions | s/text | tokens decoded/text | logit rows/text | cost vs direct | "
             "accuracy (none) | accuracy (shipped calibration) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    for name in args.sets:
        path, config_path, field = SETS[name]
        data = [json.loads(line) for line in path.open(encoding="utf-8")][: args.n]
        texts, gold = [r["text"] for r in data], [r[field] for r in data]
        config = load_config(config_path)
        backend = shared_backend(resolve_model(args.model), n_ctx=config.runtime.n_ctx,
                                 batch_size=config.runtime.batch_size, threads=args.threads)
        named = channel_completions(config)  # one verbalization per label, as tune's channel variants
        turned = as_channel(replace(config, labels=tuple(replace(label, completions=found)
                                                          for label, found in zip(config.labels, named, strict=True))))
        classifiers = {"direct": Classifier(config, backend), "channel": Classifier(turned, backend)}
        best = dict.fromkeys(classifiers, float("inf"))
        work: dict[str, dict[str, int]] = {}
        raws: dict[str, Any] = {}
        for _ in range(args.repeats):
            for direction, clf in classifiers.items():  # interleaved: a busy machine slows both alike
                seconds, work[direction], raws[direction] = measure(clf, texts)
                best[direction] = min(best[direction], seconds)
        for direction, clf in classifiers.items():
            raw = raws[direction]
            accuracy = []
            for method in ("none", None):
                probs = clf.probabilities(raw, method=method)
                predicted = clf.classes_[probs.argmax(axis=1)]
                accuracy.append(sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold))
            line = (f"| {name} | {direction} | {len(clf.scorer.slots)} | {best[direction] / len(texts):.4f} | "
                    f"{work[direction]['tokens_decoded'] / len(texts):.1f} | "
                    f"{work[direction]['logit_rows'] / len(texts):.1f} | "
                    f"{best[direction] / best['direct']:.2f}x | {accuracy[0]:.3f} | "
                    + (f"{accuracy[1]:.3f} ({clf.config.scoring.calibration}) |" if direction == "direct" else "- |"))
            lines.append(line)
            print(line, flush=True)
        if args.out:  # after every set: a run cut short keeps what it measured
            args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
