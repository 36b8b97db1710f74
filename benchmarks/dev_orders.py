"""A single-label candidate on its dev set under several orders of its demonstrations (issue 24).

    python benchmarks/dev_orders.py TASK CANDIDATE.yaml [CANDIDATE.yaml ...]   (ORDERS=N, default 4)

On a few dozen rows the order of the demonstrations alone moves accuracy by 10-20 points
(benchmarks/reports/dev-compare/entailment.txt), so one order's figure says little. Order 0 is
the candidate as written; order i > 0 shuffles its examples with seed i. For every order and
every calibration ``dev_compare.py`` prints (label-free ones as computed, ``fitted`` 5-fold
cross-validated), the accuracy on the rows marked ``"obvious"`` (right / obvious rows of each
label) and on all rows; then each method's mean and worst over the orders. A candidate without
examples is scored once.
"""
import os
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from trust import model_input, read_rows  # noqa: E402


def orders(spec: dict, n: int) -> list[dict]:
    """The candidate as written, then n - 1 seeded shuffles of its examples."""
    examples = spec.get("examples") or []
    if not isinstance(examples, list) or len(examples) < 2:
        return [spec]
    out = [spec]
    for seed in range(1, n):
        perm = np.random.default_rng(seed).permutation(len(examples))
        out.append({**spec, "examples": [examples[i] for i in perm]})
    return out


def main() -> None:
    from lpclassify import Classifier
    from lpclassify.backends.shared import shared_backend
    from lpclassify.config import load_config
    from lpclassify.config.direction import CHANNEL_REFUSED_CALIBRATIONS
    from lpclassify.evaluation import method_probabilities, score_texts
    from lpclassify.models import resolve_model

    task, paths = sys.argv[1], sys.argv[2:]
    rows = read_rows(ROOT / "benchmarks" / "data" / task / "dev.jsonl")
    obvious = np.array([bool(r.get("obvious")) for r in rows])
    for path in paths:
        spec = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        results: dict[str, list[tuple[float, float]]] = {}
        for i, variant in enumerate(orders(spec, int(os.environ.get("ORDERS", "4")))):
            config = load_config(variant)
            clf = Classifier(config, shared_backend(resolve_model(config.model), n_ctx=config.runtime.n_ctx,
                                                    threads=1))
            texts = [model_input(r, config.fields) for r in rows]
            names = config.label_names
            y = np.array([names.index(r["label"]) for r in rows])
            raw = score_texts(clf, texts)
            methods = ["none", "contextual", "domain", "batch", "pmi", "fitted"]
            if config.scoring.direction == "channel":
                methods = [m for m in methods if m not in CHANNEL_REFUSED_CALIBRATIONS]
            line = []
            for method in methods:
                p, _ = method_probabilities(clf, raw, texts, y, method, config.scoring.normalize, use_own_fit=False)
                right = p.argmax(axis=1) == y
                per = "/".join(f"{int(right[obvious & (y == j)].sum())}" for j in range(len(names)))
                results.setdefault(method, []).append((right[obvious].mean(), right.mean()))
                line.append(f"{method} {right[obvious].mean():.3f} ({per}) {right.mean():.3f}")
            print(f"== {path} order {i}: " + " | ".join(line))
            sys.stdout.flush()
        per_label = "/".join(str(int((obvious & (y == j)).sum())) for j in range(len(names)))
        print(f"   summary {path} ({len(results['none'])} orders; obvious right of {per_label} "
              f"{'/'.join(names)}): mean / worst obvious, mean / worst all")
        for method, figs in results.items():
            ob, al = np.array(figs).T
            print(f"   {method:10s} obvious {ob.mean():.3f} / {ob.min():.3f}   all {al.mean():.3f} / {al.min():.3f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
