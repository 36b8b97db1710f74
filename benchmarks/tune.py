"""`lpclassify tune` against the shipped (or base) config, on rows the tuning never saw.

    python benchmarks/tune.py --tasks questions sst2 agnews --n 1000 --threads 1 --budget 1500 \
        --json benchmarks/reports/tune.json

Per task: 64 labelled examples taken from rows that are NOT evaluated (SST-2 and AG News: rows
1000-1063 of ../shared/data; the question task: the first 64 of benchmarks/data/questions.jsonl)
go to `tune` (the CLI's code path: :func:`lpclassify.tuning.tune`); the evaluated rows (the first
N of SST-2 / AG News, the other 146 questions) are scored with

* the shipped/base config as it is;
* every label-free calibration (none, contextual, domain on the evaluated texts unlabelled, batch,
  pmi) x every normalization of it, on the same scores; the best of these is the bar to beat;
* `fitted@64`: the base config with a bias and temperature fitted on the same 64 examples
  (what `lpclassify calibrate` alone gives);
* the tuned config, as written (a fresh classifier from the YAML `tune` wrote).

`tune` scores prompt variants (direction x prompt x demonstrations) while its time budget lasts,
predicting each pass's time from the passes before: what it scores depends on the machine's
speed and load. ``--budget`` fixes the budget (recorded in the report, with what tune skipped
for it), so a run on a machine where everything fits scores every variant, whatever its load.
The issue-24 column is what `tune` gave when issue 24 was filed (benchmarks/reports/tune.json at
commit 9bdd936, the same rows).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
TASKS = {  # name: (data file, base config, label field, tune rows, evaluated rows(n))
    "sst2": (DATA / "sst2.jsonl", ROOT / "configs" / "sentiment.yaml", "label_name",
             lambda n: range(1000, 1064), lambda n: range(n)),
    "agnews": (DATA / "agnews.jsonl", ROOT / "configs" / "topic.yaml", "label_name",
               lambda n: range(1000, 1064), lambda n: range(n)),
    "questions": (ROOT / "benchmarks" / "data" / "questions.jsonl", ROOT / "benchmarks" / "data" / "questions.yaml",
                  "label", lambda n: range(64), lambda n: range(64, 210)),
}
LABEL_FREE = ("none", "contextual", "domain", "batch", "pmi")
AT_ISSUE_24 = {"questions": 115 / 146, "sst2": 0.819, "agnews": 0.821}  # tuned, benchmarks/reports/tune.json at 9bdd936
DEFAULT_BUDGET = 1500.0


def pct(value: float | None) -> str:
    return "?" if value is None else f"{100 * value:.1f}"


def provenance() -> dict[str, object]:
    """The commit (and whether the tree had changes) and the machine a report was measured on."""
    import platform
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpus": os.cpu_count()}}


def main() -> None:
    from lpclassify import Classifier
    from lpclassify.backends.shared import shared_backend
    from lpclassify.config import load_config
    from lpclassify.evaluation import compare, evaluate, score_texts
    from lpclassify.models import resolve_model
    from lpclassify.tuning import tune

    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--n", type=int, default=1000, help="evaluated rows of SST-2 and AG News")
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET, metavar="SECONDS",
                        help="tune's time budget per task (0: no limit); recorded in the report")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "reports" / "tuned")
    parser.add_argument("--tuned-from", type=Path, metavar="DIR",
                        help="skip tune: evaluate the <task>.tuned.yaml an earlier run wrote in DIR (its tune facts "
                             "come from DIR/<task>.tune.json when there is one)")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    measured_at = provenance()  # before this run writes any file (its reports and tuned configs are tracked)
    results = {}
    for task in args.tasks:
        path, config_path, field, tune_rows, eval_rows = TASKS[task]
        rows = [json.loads(line) for line in path.open(encoding="utf-8")]
        train = [rows[i] for i in tune_rows(args.n)]
        test = [rows[i] for i in eval_rows(args.n)]
        assert not {r["text"] for r in train} & {r["text"] for r in test}
        config = load_config(config_path)
        rt = config.runtime
        backend = shared_backend(resolve_model(args.model), n_ctx=rt.n_ctx, batch_size=rt.batch_size,
                                 threads=args.threads)
        texts, gold = [r["text"] for r in test], [r[field] for r in test]

        if args.tuned_from:  # tune's choice from an earlier run (tune depends on the 64 rows, not on --n)
            tuned_path = args.tuned_from / f"{task}.tuned.yaml"
            facts_file = args.tuned_from / f"{task}.tune.json"
            facts = json.loads(facts_file.read_text()) if facts_file.exists() else {}
        else:
            started = time.perf_counter()
            result = tune(config, backend, [r["text"] for r in train], [r[field] for r in train],
                          budget=args.budget or None)
            tune_seconds = time.perf_counter() - started
            tuned_path = args.out_dir / f"{task}.tuned.yaml"
            result.write(tuned_path, f"benchmarks/tune.py: {task}, 64 examples")  # with a calibration file if domain
            facts = {"tune_seconds": tune_seconds, "tune_estimate": result.estimate.accuracy,
                     "tune_selection_cv": result.selection.accuracy, "methods_searched": list(result.methods),
                     "settings_searched": result.n_settings, "chosen": result.setting.describe(),
                     "chosen_variant": result.variant.describe(), "budget_s": args.budget or None,
                     "variants_scored": [v.describe() for v in result.variants], "skipped": list(result.skipped),
                     "kept_base": result.as_dict()["kept_base"], "selection_rule": result.as_dict()["selection_rule"],
                     "baseline_cv": None if result.baseline is None else result.baseline.accuracy}
            (args.out_dir / f"{task}.tune.json").write_text(json.dumps(facts, indent=1) + "\n")
            print(f"{task}: tune took {tune_seconds:.0f} s; estimate {result.estimate.accuracy:.3f}; "
                  f"{result.setting.describe()}", flush=True)

        base = Classifier(config, backend)
        started = time.perf_counter()
        raw = score_texts(base, texts)
        base_seconds = time.perf_counter() - started
        shipped = evaluate(base, texts, gold, raw=raw).accuracy
        rows_cmp = compare(base, texts, gold, raw=raw, methods=LABEL_FREE, few_shot=0)
        best = max(rows_cmp, key=lambda r: r.accuracy)
        fit_clf = Classifier(config, backend).fit([r["text"] for r in train], [r[field] for r in train])
        fitted64 = evaluate(fit_clf, texts, gold, raw=raw).accuracy

        tuned = Classifier(load_config(tuned_path), backend)
        started = time.perf_counter()
        tuned_accuracy = evaluate(tuned, texts, gold).accuracy
        tuned_seconds = time.perf_counter() - started
        results[task] = {
            "evaluated": len(test), "tune_examples": len(train),
            **{key: facts.get(key) for key in ("tune_seconds", "tune_estimate", "tune_selection_cv", "methods_searched",
                                               "settings_searched", "chosen", "chosen_variant", "budget_s",
                                               "variants_scored", "skipped", "kept_base", "selection_rule",
                                               "baseline_cv")},
            "tuned_at_issue_24": AT_ISSUE_24.get(task),
            "tuned_from": str(args.tuned_from) if args.tuned_from else None,
            "shipped": shipped, "shipped_calibration": config.scoring.calibration,
            "best_label_free": best.accuracy, "best_label_free_setting": f"{best.method}/{best.normalize}",
            "fitted64": fitted64, "tuned": tuned_accuracy, "tuned_config": os.path.relpath(tuned_path, ROOT),
            "score_seconds_base": base_seconds, "score_seconds_tuned": tuned_seconds,
            "label_free": [r.as_dict() for r in rows_cmp],
        }
        print(json.dumps({k: v for k, v in results[task].items() if k != "label_free"}), flush=True)
        if args.json:  # after every task: a run cut short keeps what it measured
            args.json.write_text(json.dumps({"model": args.model, "n": args.n, "threads": args.threads,
                                             "budget_s": args.budget or None, "command": " ".join(sys.argv),
                                             **measured_at, "tasks": results},
                                            indent=1) + "\n")
    print("\n| task | evaluated | shipped/base | best label-free (which) | fitted@64 | tune estimate (nested CV) "
          "| tuned | tuned - best label-free | tuned at issue 24 | tune time |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for task, r in results.items():
        print(f"| {task} | {r['evaluated']} | {100 * r['shipped']:.1f} | {100 * r['best_label_free']:.1f} "
              f"({r['best_label_free_setting']}) | {100 * r['fitted64']:.1f} | {pct(r['tune_estimate'])} "
              f"| {100 * r['tuned']:.1f} | {100 * (r['tuned'] - r['best_label_free']):+.1f} "
              f"| {pct(r['tuned_at_issue_24'])} | {r['tune_seconds'] or 0:.0f} s |")


if __name__ == "__main__":
    main()
