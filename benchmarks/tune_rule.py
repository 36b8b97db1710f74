"""What tune's selection rule changes, on the shipped configs' own dev sets (never on evaluated rows).

    python benchmarks/tune_rule.py --threads 1 --json benchmarks/reports/tune-rule-dev.json

For each shipped single-label config, `tune` runs once on ``benchmarks/data/<config>/dev.jsonl``
(64 rows; direct scoring, no demonstrations added -- a config's own examples stay -- so that one
model pass per prompt is all it costs). On the very same scores the search is then run twice:

* ``rule``: what tune does now (:mod:`lpclassify.tuning.search`: keep the config as given unless a
  setting beats it by more than one standard error of the paired per-row difference; the same
  for each verbalizer refinement step);
* ``max``: what it did before: the highest cross-validated accuracy (ties: lower log-loss), then
  greedy refinement taking any improvement.

For each: the chosen setting, its cross-validated accuracy on the 64 rows (optimistic) and the
nested cross-validation estimate (the whole procedure re-run without each outer fold and scored
on it: the honest comparison of the two procedures on these rows).
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CONFIGS = ("sentiment", "topic", "spam", "support_intents", "entailment", "sentiment_chat")


def plain_max_select(self, rows, progress=None):  # type: ignore[no-untyped-def]
    """The selection before the rule (lpclassify/tuning/search.py at ef95386): a maximum, greedy refinement."""
    from dataclasses import replace

    best, best_score = self.settings[0], self.cv_score(self.settings[0], rows)
    for setting in self.settings[1:]:
        score = self.cv_score(setting, rows)
        if score.key() > best_score.key():
            best, best_score = setting, score
    for label, options in enumerate(self.options[best.prompt]):
        for option in options:
            if option == best.completions[label]:
                continue
            completions = (*best.completions[:label], option, *best.completions[label + 1:])
            verbalizer = best.verbalizer.removesuffix("+refined") + "+refined"
            candidate = replace(best, completions=completions, verbalizer=verbalizer)
            score = self.cv_score(candidate, rows)
            if score.key() > best_score.key():
                best, best_score = candidate, score
    return best, best_score


def main() -> None:
    import numpy as np

    from lpclassify.backends.shared import shared_backend
    from lpclassify.config import load_config
    from lpclassify.models import resolve_model
    from lpclassify.tuning import run as tuning_run
    from lpclassify.tuning.search import Search, nested_estimate

    parser = argparse.ArgumentParser()
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    searches: list[Search] = []

    class Captured(Search):
        def __init__(self, *a, **k) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*a, **k)
            searches.append(self)

    tuning_run.Search = Captured  # type: ignore[misc]
    results = {}
    for name in args.configs:
        config = load_config(ROOT / "configs" / f"{name}.yaml")
        if config.decision.mode != "single":
            continue
        rows = [json.loads(line) for line in (ROOT / "benchmarks" / "data" / name / "dev.jsonl").open()]
        texts = [r["text"] if "text" in r else {f: r[f] for f in config.fields} for r in rows]
        rt = config.runtime
        backend = shared_backend(resolve_model(config.model), n_ctx=rt.n_ctx, batch_size=rt.batch_size,
                                 threads=args.threads)
        searches.clear()
        result = tuning_run.tune(config, backend, texts, [r["label"] for r in rows], shots=(0,),
                                 directions=("direct",), budget=None)
        search = searches[-1]
        everything = np.arange(len(search.y))
        old = types.MethodType(plain_max_select, search)
        old_chosen, old_cv = old(everything)
        search.select = old  # type: ignore[method-assign]
        old_estimate, old_outer = nested_estimate(search)
        results[name] = {
            "n": len(rows), "n_scored": result.n_examples, "settings": result.n_settings,
            "base_scorable": result.base is not None,
            "base_cv": None if result.baseline is None else result.baseline.accuracy,
            "rule": {"chosen": result.setting.describe(), "kept_base": result.as_dict()["kept_base"],
                     "cv": result.selection.accuracy, "nested_estimate": result.estimate.accuracy,
                     "outer_folds_kept_base": sum(f["kept_base"] for f in result.as_dict()["outer_folds"])},
            "max": {"chosen": old_chosen.describe(), "cv": old_cv.accuracy, "nested_estimate": old_estimate.accuracy,
                    "outer_folds_kept_base": sum(f.chosen == result.base for f in old_outer)},
        }
        print(name, json.dumps(results[name]), flush=True)
        if args.json:
            args.json.write_text(json.dumps({"command": " ".join(sys.argv), "threads": args.threads,
                                             "configs": results}, indent=1) + "\n")
    print("\n| config | base CV | rule: chosen | rule: nested estimate | max: nested estimate |\n"
          "|---|---:|---|---:|---:|")
    for name, r in results.items():
        base = "?" if r["base_cv"] is None else f"{100 * r['base_cv']:.1f}"
        chosen = "the config as given" if r["rule"]["kept_base"] else r["rule"]["chosen"]
        print(f"| {name} | {base} | {chosen} | {100 * r['rule']['nested_estimate']:.1f} "
              f"| {100 * r['max']['nested_estimate']:.1f} |")


if __name__ == "__main__":
    main()
