"""Candidate configs on a dev set, as used to choose the shipped configs (issue 24).

    python benchmarks/dev_compare.py TASK CANDIDATE.yaml [CANDIDATE.yaml ...]   (LIMIT=N: first N dev rows)
    DEV=FILE.jsonl TAIL=N LIMIT=N python benchmarks/dev_compare.py ...   (another labelled file, its last N rows)

Scores benchmarks/data/TASK/dev.jsonl once per candidate (one thread: the machine is shared) and
prints the accuracy as configured, its first wrong answers, and every label-free calibration plus
a 5-fold cross-validated fitted bias/temperature on the same scores (``lpclassify eval --compare``'s
rows), and the same methods on the rows marked ``"obvious": true`` where the file marks any.
Multi-label candidates: each label's mean yes-probability on texts with and without it, and
exact-set accuracy, micro-F1 and false-positive rates with the configured thresholds, with
thresholds fitted for F1 on all the rows (what ``lpclassify calibrate --write-config`` writes), and
with thresholds fitted on three quarters and applied to the fourth (4-fold, an honest estimate;
folds by row index, then the mean exact-set accuracy over 10 random 4-fold splits, which varies
less with the fold assignment on a set of 64 rows).
The outputs of the runs that chose the shipped configs are in benchmarks/reports/dev-compare/.
"""
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from trust import model_input, multi_metrics, read_rows  # noqa: E402


class Chosen:
    """The labels a threshold chose for one text (what multi_metrics reads of a prediction)."""

    def __init__(self, labels: tuple[str, ...]) -> None:
        self.labels = labels


def multi(config, probs, rows, labels) -> None:
    from lpclassify.calibration.thresholds import fit_thresholds, label_sets

    # the label that stands for "none of these" (decision.multi.none) is never given: not a column here
    keep = [j for j, name in enumerate(config.label_names) if name != config.decision.multi.none]
    names = tuple(config.label_names[j] for j in keep)
    probs = probs[:, keep]
    truth = label_sets(labels, names)
    for j, name in enumerate(names):
        print(name, "pos mean", probs[truth[:, j], j].mean().round(3),
              "neg mean", probs[~truth[:, j], j].mean().round(3))

    def report(title: str, chosen: np.ndarray, extra: str = "") -> None:
        preds = [Chosen(tuple(n for j, n in enumerate(names) if chosen[i, j])) for i in range(len(rows))]
        m = multi_metrics(rows, preds, names)
        print(title, extra, "exact", m["exact_set_accuracy"], "microF1", m["micro_f1"], "FPR", m["false_positive_rate"])

    configured = [label.threshold if label.threshold is not None else config.decision.threshold
                  for label in config.labels if label.name in names]
    for title, th in (("as-is", configured), ("fitted(in-sample)", fit_thresholds(probs, truth))):
        report(title, probs >= np.array(th), str([round(x, 3) for x in th]))
    k = 4
    fold = np.arange(len(rows)) % k
    chosen = np.zeros_like(probs, dtype=bool)
    for f in range(k):
        th = fit_thresholds(probs[fold != f], truth[fold != f])
        chosen[fold == f] = probs[fold == f] >= np.array(th)
    report("fitted(4-fold CV)", chosen)
    rng = np.random.default_rng(0)  # the same splits for every candidate
    exact = []
    for _ in range(10):
        fold = rng.permutation(len(rows)) % k
        for f in range(k):
            th = fit_thresholds(probs[fold != f], truth[fold != f])
            chosen[fold == f] = probs[fold == f] >= np.array(th)
        exact.append(multi_metrics(rows, [Chosen(tuple(n for j, n in enumerate(names) if chosen[i, j]))
                                         for i in range(len(rows))], names)["exact_set_accuracy"])
    print("fitted(4-fold CV, 10 random splits) exact mean", round(float(np.mean(exact)), 4),
          "range", round(min(exact), 4), "-", round(max(exact), 4))


def single(clf, config, raw, rows, texts, labels) -> None:
    from lpclassify.evaluation import compare, method_probabilities

    probs = clf.probabilities(raw)
    names = config.label_names
    th = config.decision.threshold
    right = [(names[int(p.argmax())] == label and p.max() >= th) for p, label in zip(probs, labels, strict=True)]
    print(f"as-is ({config.scoring.calibration}, thr {th}): {np.mean(right):.3f}")
    wrong = [(model_input(r, config.fields), r["label"], names[int(p.argmax())], round(float(p.max()), 2))
             for r, p, ok in zip(rows, probs, right, strict=True) if not ok]
    for w in wrong[:12]:
        print("   x", w)
    rows_c = compare(clf, texts, labels, raw=raw, normalizations=(config.scoring.normalize,), few_shot=0)
    print("  compare:", {r.method: round(r.accuracy, 3) for r in rows_c})
    obvious = np.array([bool(r.get("obvious")) for r in rows])
    if obvious.any():  # the same methods on the rows marked "obvious" (what trust.py's first figure reads)
        y = np.array([names.index(label) for label in labels])
        right_by = {}
        for method in dict.fromkeys(r.method for r in rows_c):  # the methods compare ran (channel: fewer)
            p, _ = method_probabilities(clf, raw, texts, y, method, config.scoring.normalize, use_own_fit=False)
            right_by[method] = round(float((p.argmax(axis=1) == y)[obvious].mean()), 3)
        print(f"  obvious ({int(obvious.sum())} rows):", right_by)


def main() -> None:
    from lpclassify import Classifier
    from lpclassify.backends.shared import shared_backend
    from lpclassify.config import load_config
    from lpclassify.evaluation import score_texts
    from lpclassify.models import resolve_model

    task, paths = sys.argv[1], sys.argv[2:]
    if os.environ.get("DEV"):  # another labelled file (label or label_name); TAIL=N: its last N rows
        rows = [{**r, "label": r.get("label_name", r["label"])} for r in read_rows(Path(os.environ["DEV"]))]
        rows = rows[-int(os.environ["TAIL"]):] if os.environ.get("TAIL") else rows
    else:
        rows = read_rows(ROOT / "benchmarks" / "data" / task / "dev.jsonl")
    rows = rows[:int(os.environ.get("LIMIT", "64"))]
    for path in paths:
        config = load_config(path)
        clf = Classifier(config, shared_backend(resolve_model(config.model), n_ctx=config.runtime.n_ctx, threads=1))
        texts = [model_input(r, config.fields) for r in rows]
        labels = [r["label"] for r in rows]
        started = time.time()
        raw = score_texts(clf, texts)
        print(f"== {path} ({time.time() - started:.0f}s)")
        if config.decision.mode == "multi":
            multi(config, clf.probabilities(raw), rows, labels)
        else:
            single(clf, config, raw, rows, texts, labels)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
