"""Few-shot examples: what they cost per text, and what they buy, on the shared benchmark sets.

    python benchmarks/fewshot.py cost --n 60 --shots 0 4 16            # per-text cost, side by side
    python benchmarks/fewshot.py accuracy --n 200 --shots 0 4 8       # accuracy with k examples
    python benchmarks/fewshot.py chat --n 200                         # SmolLM2-Instruct: chat template vs plain

Examples are always taken from the *last* rows of a data file (round-robin over its labels, so
k >= number of labels covers every label) and only the *first* N rows are evaluated: no
evaluated text is ever an example. ``cost`` classifies the same N texts with 0, 4 and 16
examples on one loaded model, in one process, repeating the passes and keeping each setting's
fastest, and reports seconds per text, tokens decoded per text and the prefix the engine keeps.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
SETS = {"sst2": ("sst2.jsonl", "sentiment.yaml"), "agnews": ("agnews.jsonl", "topic.yaml")}
RUNTIME: dict[str, Any] = {}  # every config's runtime settings from the command line (--threads)


def rows(name: str) -> list[dict[str, Any]]:
    with (DATA / SETS[name][0]).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def examples(data: list[dict[str, Any]], k: int) -> list[dict[str, str]]:
    """k examples from the end of the file, cycling over the labels (never an evaluated row)."""
    by_label: dict[str, list[dict[str, Any]]] = {}
    for row in reversed(data[-2000:]):
        by_label.setdefault(row["label_name"], []).append(row)
    labels = sorted(by_label)
    return [{"text": by_label[labels[i % len(labels)]][i // len(labels)]["text"],
             "label": by_label[labels[i % len(labels)]][i // len(labels)]["label_name"]} for i in range(k)]


def config_with(name: str, k: int, data: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    import yaml

    config = yaml.safe_load((ROOT / "configs" / SETS[name][1]).read_text(encoding="utf-8"))
    if k:
        config["examples"] = examples(data, k)
    # 16 AG News examples alone take ~1,250 tokens: every setting gets room for them, so all share one model.
    config["runtime"] = {**config.get("runtime", {}), "n_ctx": 2048, **RUNTIME}
    return {**config, **extra}


def cost(args: argparse.Namespace) -> list[dict[str, Any]]:
    from lpclassify import Classifier

    rows_out = []
    print("| model | data | examples | prefix tokens | s/text | tokens decoded/text | decodes/text | cost vs none |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|")
    for name in args.sets:
        data = rows(name)
        texts = [row["text"] for row in data[: args.n]]
        base = Classifier.from_config(config_with(name, 0, data), model=args.model)
        backend = base.backend
        classifiers = {k: Classifier(Classifier.from_config(config_with(name, k, data), backend=backend).config,
                                     backend) for k in args.shots}
        best: dict[int, float] = {k: float("inf") for k in args.shots}
        tokens: dict[int, int] = {}
        decodes: dict[int, int] = {}
        for _ in range(args.repeats):
            for k, clf in classifiers.items():  # interleaved: a busy machine slows every setting alike
                clf.raw_scores(texts[:1])  # the examples' prefix is decoded here, once
                before = backend.stats.tokens_decoded, backend.stats.decode_calls
                start = time.perf_counter()
                clf.raw_scores(texts)
                best[k] = min(best[k], time.perf_counter() - start)
                tokens[k] = backend.stats.tokens_decoded - before[0]
                decodes[k] = backend.stats.decode_calls - before[1]
        for k, clf in classifiers.items():
            print(f"| {args.model} | {name} | {k} | {len(clf.scorer.prefix)} | {best[k] / len(texts):.4f} | "
                  f"{tokens[k] / len(texts):.1f} | {decodes[k] / len(texts):.2f} | "
                  f"{best[k] / best[args.shots[0]]:.2f}x |", flush=True)
            rows_out.append({"model": args.model, "dataset": name, "examples": k, "n": len(texts),
                             "prefix_tokens": len(clf.scorer.prefix), "seconds_per_text": best[k] / len(texts),
                             "tokens_per_text": tokens[k] / len(texts), "decodes_per_text": decodes[k] / len(texts),
                             "cost_vs_first": best[k] / best[args.shots[0]], "repeats": args.repeats})
    return rows_out


def accuracy_of(clf: Any, data: list[dict[str, Any]], n: int) -> tuple[float, float, float]:
    texts = [row["text"] for row in data[:n]]
    gold = [row["label_name"] for row in data[:n]]
    start = time.perf_counter()
    raw = clf.raw_scores(texts)
    seconds = time.perf_counter() - start
    out = []
    for calibrate in (True, False):
        predicted = clf.classes_[clf.probabilities(raw, calibrate=calibrate).argmax(axis=1)]
        out.append(sum(p == g for p, g in zip(predicted, gold, strict=True)) / n)
    return out[0], out[1], seconds


def accuracy(args: argparse.Namespace) -> list[dict[str, Any]]:
    from lpclassify import Classifier

    rows_out = []
    print("| model | data | examples | N | accuracy (contextual) | uncalibrated | s |\n"
          "|---|---|---:|---:|---:|---:|---:|")
    for name in args.sets:
        data = rows(name)
        backend = None
        for k in args.shots:
            clf = Classifier.from_config(config_with(name, k, data), model=args.model, backend=backend)
            backend = clf.backend
            calibrated, plain, seconds = accuracy_of(clf, data, args.n)
            print(f"| {args.model} | {name} | {k} | {args.n} | {calibrated:.3f} | {plain:.3f} | {seconds:.0f} |",
                  flush=True)
            rows_out.append({"model": args.model, "dataset": name, "examples": k, "n": args.n,
                             "accuracy": calibrated, "uncalibrated": plain, "seconds": seconds})
    return rows_out


def chat(args: argparse.Namespace) -> list[dict[str, Any]]:
    """SmolLM2-Instruct with its chat template vs the shipped plain prompt (same labels, same calibration).

    Two chat variants: one-word replies ("positive"), and replies opened by a lead-in
    ("Sentiment: positive", as configs/sentiment_chat.yaml does): the lead-in's log-prob is the
    same for every label, so it cancels, and the label word is read where the model expects one.
    """
    from lpclassify import Classifier

    rows_out = []
    users = {"sst2": ("You classify the sentiment of movie reviews. Answer with one word, positive or negative.",
                      "Review: {text}\nIs this review positive or negative?", "Sentiment: "),
             "agnews": ("You classify news articles into one of four categories: World, Sports, Business, "
                        "Technology. Answer with the category only.",
                        "Article: {text}\nCategory?", "Category: ")}
    print("| model | data | prompt | N | accuracy (contextual) | uncalibrated | s |\n|---|---|---|---:|---:|---:|---:|")
    for name in args.sets:
        data = rows(name)
        plain = config_with(name, 0, data)
        system, user, lead = users[name]
        backend = None
        for kind, config in (("plain", plain), ("chat, one-word reply", chat_config(plain, system, user, "")),
                             (f"chat, reply opened by {lead.strip()!r}", chat_config(plain, system, user, lead))):
            clf = Classifier.from_config(config, model="smollm2-135m", backend=backend)
            backend = clf.backend
            calibrated, uncalibrated, seconds = accuracy_of(clf, data, args.n)
            print(f"| smollm2-135m | {name} | {kind} | {args.n} | {calibrated:.3f} | {uncalibrated:.3f} | "
                  f"{seconds:.0f} |", flush=True)
            rows_out.append({"model": "smollm2-135m", "dataset": name, "prompt": kind, "n": args.n,
                             "accuracy": calibrated, "uncalibrated": uncalibrated, "seconds": seconds})
    return rows_out


def chat_config(plain: dict[str, Any], system: str, user: str, lead: str) -> dict[str, Any]:
    """``plain`` asked as a chat: each completion, without its leading space, after ``lead``."""
    return {**plain, "prompt": {"system": system, "user": user},
            "labels": {label: {"completions": [lead + c.lstrip() for c in settings["completions"]]}
                       for label, settings in plain["labels"].items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("cost", "accuracy", "chat"))
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--shots", type=int, nargs="+", default=None)
    parser.add_argument("--sets", nargs="+", default=["sst2", "agnews"], choices=sorted(SETS))
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="llama.cpp threads (default: the configs' runtime, all cores)")
    parser.add_argument("--json", type=Path, help="write the rows here too")
    args = parser.parse_args()
    if args.threads:
        RUNTIME["threads"] = args.threads
    args.shots = args.shots or ([0, 4, 16] if args.what == "cost" else [0, 4, 8])
    rows_out = {"cost": cost, "accuracy": accuracy, "chat": chat}[args.what](args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows_out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
