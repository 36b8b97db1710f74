"""Which calibration should a config that names none get? Every label-free method on every task type.

    python benchmarks/default_calibration.py        # -> benchmarks/reports/default-calibration.json + .md

The candidates are the methods that need no labelled data (none, contextual, domain, batch, pmi):
a config that names no calibration has none to give. Each is measured on the dev sets written for
this project (sentiment, topic, spam, support intents, entailment pairs: benchmarks/data/<task>/
dev.jsonl) and the question-type set (benchmarks/data/questions.jsonl), with two configs per task:

* ``written``: the prompt and verbalizers of the config as it was before issue 24 (git revision
  ``--configs-from``, default the commit that added the dev sets), the kind a user writes by hand;
* ``names``: the same prompt with every label scored as its bare name (" " + name), what a user
  gets who lists label names and nothing else (an ad-hoc label set).

Every method is computed from one model pass per config (:func:`lpclassify.evaluation.compare`);
``domain`` draws its random-word inputs from the evaluated texts, unlabelled. The default should be
the method that is best across task types -- by mean accuracy and by its worst loss against the
best method of each task -- not the best on any one.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from trust import commit, git, machine, model_input, read_rows  # noqa: E402

DEFAULT_MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"
METHODS = ("none", "contextual", "domain", "batch", "pmi")
TASKS = {  # task: (config, data file)
    "sentiment": ("configs/sentiment.yaml", "benchmarks/data/sentiment/dev.jsonl"),
    "topic": ("configs/topic.yaml", "benchmarks/data/topic/dev.jsonl"),
    "spam": ("configs/spam.yaml", "benchmarks/data/spam/dev.jsonl"),
    "intents": ("configs/support_intents.yaml", "benchmarks/data/support_intents/dev.jsonl"),
    "pairs": ("configs/entailment.yaml", "benchmarks/data/entailment/dev.jsonl"),
    "questions": ("benchmarks/data/questions.yaml", "benchmarks/data/questions.jsonl"),
}


def load_at(rev: str, path: str, tmp: Path) -> Any:
    """A config as of ``rev`` (its labels file beside it), with no calibration and no abstention."""
    from lpclassify.config import load_config

    folder = tmp / rev / Path(path).parent
    folder.mkdir(parents=True, exist_ok=True)
    for entry in git("ls-tree", "--name-only", rev, str(Path(path).parent) + "/").splitlines():
        (folder / Path(entry).name).write_text(git("show", f"{rev}:{entry}") + "\n")
    config = load_config(folder / Path(path).name)
    return replace(config, scoring=replace(config.scoring, calibration="none"),
                   decision=replace(config.decision, threshold=0.0))


def variants(config: Any) -> dict[str, Any]:
    """The config as written, and with every label scored as its bare name."""
    names = tuple(replace(label, completions=(" " + label.name,)) for label in config.labels)
    return {"written": config, "names": replace(config, labels=names)}


def write(path: Path, results: dict[str, Any], configs_from: str) -> None:
    """The JSON report and its markdown table, with each method's mean and its losses against each task's best."""
    summary = {}
    for method in METHODS:
        accs = [r["methods"][method]["accuracy"] for r in results.values()]
        losses = [max(v["accuracy"] for v in r["methods"].values()) - r["methods"][method]["accuracy"]
                  for r in results.values()]
        wins = sum(loss == 0 for loss in losses)
        summary[method] = {"mean_accuracy": round(sum(accs) / len(accs), 4), "worst_loss": round(max(losses), 4),
                           "mean_loss": round(sum(losses) / len(losses), 4), "best_on": wins}
    document = {"configs_from": configs_from, "model": DEFAULT_MODEL_FILE, "machine": machine(),
                "results": results, "summary": summary}
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    lines = ["# Default calibration: every label-free method on every task type", "",
             f"Measured by `python benchmarks/default_calibration.py` (each row's command and commit are in the "
             f"JSON), model {document['model']}, {document['machine']['processor']}, "
             f"{document['machine']['cpus']} CPUs. Accuracy on each dev set (64 rows; the first 64 questions); "
             "`written`: the config as hand-written before issue 24; `names`: its labels as bare names.", "",
             "| task / config | " + " | ".join(METHODS) + " |", "|---|" + "---|" * len(METHODS)]
    for key, r in results.items():
        best = max(v["accuracy"] for v in r["methods"].values())
        cells = [(f"**{100 * r['methods'][m]['accuracy']:.1f}**" if r["methods"][m]["accuracy"] == best
                  else f"{100 * r['methods'][m]['accuracy']:.1f}") for m in METHODS]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    for stat, label in (("mean_accuracy", "mean accuracy"), ("mean_loss", "mean loss vs the task's best"),
                        ("worst_loss", "worst loss vs the task's best")):
        lines.append(f"| *{label}* | " + " | ".join(f"{100 * summary[m][stat]:.1f}" for m in METHODS) + " |")
    lines.append("| *best on (of " + str(len(results)) + ")* | " + " | ".join(str(summary[m]["best_on"])
                                                                           for m in METHODS) + " |")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    from lpclassify import Classifier
    from lpclassify.backends.shared import shared_backend
    from lpclassify.evaluation import compare, score_texts
    from lpclassify.models import resolve_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs-from", default="bf3e643", metavar="REV")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--variants", nargs="+", default=["written", "names"], choices=["written", "names"])
    parser.add_argument("--threads", type=int, help="llama.cpp threads (1 on a crowded machine)")
    parser.add_argument("--limit", type=int, default=64, help="rows per task (64: the dev sets' size)")
    parser.add_argument("--merge", nargs="+", type=Path, metavar="PART.json",
                        help="only combine the results of earlier runs into --json (and its table)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "reports" / "default-calibration.json")
    args = parser.parse_args()

    if args.merge:  # parts measured by separate runs (one per task group, in parallel)
        merged: dict[str, Any] = {}
        for part in args.merge:
            merged.update(json.loads(part.read_text(encoding="utf-8"))["results"])
        order = [f"{t}/{v}" for t in TASKS for v in ("written", "names")]
        write(args.json, {key: merged[key] for key in order if key in merged}, args.configs_from)
        print(f"wrote {args.json}")
        return
    tmp = Path(tempfile.mkdtemp())
    backend = shared_backend(resolve_model("default"), n_ctx=1024, threads=args.threads)
    results: dict[str, Any] = {}
    for task in args.tasks:
        config_path, data_path = TASKS[task]
        rows = read_rows(ROOT / data_path)
        rows = rows[:args.limit]  # questions: its first 64 are the rows tune.py tunes on
        for variant, config in variants(load_at(args.configs_from, config_path, tmp)).items():
            if variant not in args.variants or (task == "intents" and variant == "names"):
                continue  # the intents' labels file already scores each intent by its name first
            clf = Classifier(config, backend)
            texts = [model_input(r, config.fields) for r in rows]
            labels = [r["label"] for r in rows]
            raw = score_texts(clf, texts)
            table = {row.method: {"accuracy": round(row.accuracy, 4), "macro_f1": round(row.macro_f1, 4)}
                     for row in compare(clf, texts, labels, raw=raw, methods=METHODS,
                                        normalizations=(config.scoring.normalize,), few_shot=0)}
            results[f"{task}/{variant}"] = {"n": len(rows), "normalize": config.scoring.normalize, "methods": table}
            print(task, variant, {m: v["accuracy"] for m, v in table.items()}, flush=True)
            part = {"command": "python benchmarks/default_calibration.py " + " ".join(sys.argv[1:]), "commit": commit()}
            write(args.json, {key: dict(r, measured_by=part) for key, r in results.items()}, args.configs_from)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
