"""`tune` as it was (no demonstrations, direct scoring) against `tune` choosing demonstrations and direction,
in ONE run: same model, same 64 tuning examples, same evaluated rows.

    python benchmarks/tune_demos.py --tasks questions sst2 agnews --n 1000 --budget 300 \
        --out benchmarks/reports/tune-demos.md

The tasks, tuning rows and evaluated rows are benchmarks/tune.py's (SST-2 / AG News: tune on rows
1000-1063 of ../shared/data, evaluate the first N; questions: tune on the first 64 of
benchmarks/data/questions.jsonl, evaluate the other 146). "before" is `tune(..., shots=(0,),
directions=("direct",))`, the search as it was filed; "after" is the default search within
``--budget`` seconds. Each tuned config is written under ``--out-dir`` and evaluated as written.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from tune import TASKS  # noqa: E402 - the same tasks and rows as benchmarks/tune.py


def main() -> None:
    from lpclassify import Classifier
    from lpclassify.backends.shared import shared_backend
    from lpclassify.config import load_config
    from lpclassify.evaluation import evaluate
    from lpclassify.models import resolve_model
    from lpclassify.tuning import tune

    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--n", type=int, default=1000, help="evaluated rows of SST-2 and AG News")
    parser.add_argument("--budget", type=float, default=300.0, help="tune --budget for the new search")
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, help="markdown report")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "reports" / "tuned")
    parser.add_argument("--only", choices=("before", "after"), help="run one of the two searches")
    parser.add_argument("--shots", type=int, nargs="+", default=None,
                        help="demonstrations per label the new search tries (default: tune's)")
    parser.add_argument("--directions", nargs="+", default=None, help="directions the new search tries")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    head = [f"# tune before/after demonstrations and direction ({args.model}, budget {args.budget:.0f} s)", "",
            f"commit {commit}, {platform.node()}, python benchmarks/tune_demos.py --tasks {' '.join(args.tasks)} "
            f"--n {args.n} --budget {args.budget:g}", "",
            "| task | evaluated | before: tuned | after: tuned | after - before | after: chosen | "
            "before: tune s | after: tune s | after: skipped |", "|---|---:|---:|---:|---:|---|---:|---:|---|"]
    results: dict[str, dict[str, object]] = {}
    lines = list(head)
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
        train_texts, train_gold = [r["text"] for r in train], [r[field] for r in train]
        out: dict[str, object] = {"evaluated": len(test), "tune_examples": len(train)}
        accuracy: dict[str, float] = {}
        written: dict[str, str] = {}
        after: dict[str, object] = {"budget": args.budget or None}
        if args.shots is not None:
            after["shots"] = tuple(args.shots)
        if args.directions is not None:
            after["directions"] = tuple(args.directions)
        for name, options in (("before", {"shots": (0,), "directions": ("direct",), "budget": None}),
                              ("after", after)):
            if args.only and name != args.only:
                continue
            started = time.perf_counter()
            result = tune(config, backend, train_texts, train_gold, **options)
            seconds = time.perf_counter() - started
            tuned_path = args.out_dir / f"{task}.{name}.yaml"
            # with the calibration file a chosen domain calibration needs (its inputs, drawn from the examples)
            result.write(tuned_path, f"benchmarks/tune_demos.py: {task}, 64 examples, {name}")
            text = tuned_path.read_text()
            print(f"{task} {name}: tune {seconds:.0f} s, estimate {result.estimate.accuracy:.3f}, "
                  f"{result.variant.describe()}; {result.setting.describe()}; skipped {list(result.skipped)}",
                  flush=True)
            body = text.split("\n\n", 1)[1]
            if body in written.values():  # the same config as before's: the same accuracy
                accuracy[name] = accuracy[next(k for k, v in written.items() if v == body)]
            else:
                started_eval = time.perf_counter()
                accuracy[name] = evaluate(Classifier(load_config(tuned_path), backend), texts, gold).accuracy
                out[f"{name}_eval_seconds"] = time.perf_counter() - started_eval
            written[name] = body
            out[name] = {"accuracy": accuracy[name], "tune_seconds": seconds, "estimate": result.estimate.accuracy,
                         "chosen": f"{result.variant.describe()}; {result.setting.describe()}",
                         "skipped": list(result.skipped), "variants": [v.describe() for v in result.variants],
                         "config": str(tuned_path.relative_to(ROOT))}
            print(f"{task} {name}: accuracy {accuracy[name]:.3f} on {len(test)} rows", flush=True)
        results[task] = out
        got = {k: out.get(k, {}) for k in ("before", "after")}
        pct = {k: f"{100 * accuracy[k]:.1f}" if k in accuracy else "-" for k in ("before", "after")}
        diff = f"{100 * (accuracy['after'] - accuracy['before']):+.1f}" if len(accuracy) == 2 else "-"
        line = (f"| {task} | {len(test)} | {pct['before']} | {pct['after']} | {diff} | "
                f"{got['after'].get('chosen', '-')} | {got['before'].get('tune_seconds', 0):.0f} | "
                f"{got['after'].get('tune_seconds', 0):.0f} | {len(got['after'].get('skipped', []))} variant(s) |")
        lines.append(line)
        print(line, flush=True)
        if args.json:  # after every task: a run cut short keeps what it measured
            args.json.write_text(json.dumps({"model": args.model, "n": args.n, "commit": commit, "tasks": results},
                                            indent=1) + "\n")
        if args.out:
            args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
