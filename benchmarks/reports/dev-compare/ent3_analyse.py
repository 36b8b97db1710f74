"""Arithmetic on ent3_screen.py dumps: accuracy of connective sets (each label the mean likelihood of its
connectives, logsumexp - log n) and of a threshold on the score difference, on the obvious rows and all
rows, for the 64 first dev rows (old) and the 34 added in this pass (new) separately.

    python benchmarks/reports/dev-compare/ent3_analyse.py DUMP.pkl [ENT_INDICES NOT_INDICES]
"""
import itertools
import pickle
import sys
from pathlib import Path

import numpy as np
from scipy.special import logsumexp

OLD = 64


def diff(d, e, n) -> np.ndarray:
    lp = d["logprobs"]
    ne = len(d["ent"])
    return (logsumexp(lp[:, list(e)], axis=1) - np.log(len(e))
            - logsumexp(lp[:, [ne + j for j in n]], axis=1) + np.log(len(n)))


def figures(d, score, t=0.0) -> dict:
    y = np.array([r["label"] == "entailment" for r in d["rows"]])
    ob = np.array([bool(r.get("obvious")) for r in d["rows"]])
    ok = (score > t) == y
    idx = np.arange(len(y))
    out = {}
    for name, m in (("old", idx < OLD), ("new", idx >= OLD), ("all", idx >= 0)):
        out[name] = (ok[m & ob].mean(), ok[m].mean())
    return out


def fmt(f) -> str:
    return " | ".join(f"{k} ob {v[0]:.3f} all {v[1]:.3f}" for k, v in f.items())


def cv_threshold(d, score, folds=4, seeds=10) -> dict:
    """Threshold fitted (max accuracy on all rows) on 3/4 of the rows, applied to the last quarter."""
    y = np.array([r["label"] == "entailment" for r in d["rows"]])
    n = len(y)
    preds = []
    for s in range(seeds):
        fold = np.random.default_rng(s).permutation(n) % folds
        pred = np.zeros(n, bool)
        for k in range(folds):
            tr = fold != k
            cands = np.sort(score[tr])
            cands = np.concatenate([[cands[0] - 1], (cands[1:] + cands[:-1]) / 2, [cands[-1] + 1]])
            accs = [((score[tr] > c) == y[tr]).mean() for c in cands]
            best = cands[np.flatnonzero(np.array(accs) == max(accs))]
            t = best[np.argmin(np.abs(best))]  # of the best, the one nearest 0
            pred[~tr] = score[~tr] > t
        preds.append(pred)
    ob = np.array([bool(r.get("obvious")) for r in d["rows"]])
    idx = np.arange(n)
    out = {}
    for name, m in (("old", idx < OLD), ("new", idx >= OLD), ("all", idx >= 0)):
        acc = [((p == y)[m & ob].mean(), (p == y)[m].mean()) for p in preds]
        out[name] = tuple(np.mean(acc, axis=0))
    return out


def main() -> None:
    d = pickle.loads(Path(sys.argv[1]).read_bytes())
    E, N = d["ent"], d["not"]
    if len(sys.argv) > 2:
        e = [int(x) for x in sys.argv[2].split(",")]
        n = [int(x) for x in sys.argv[3].split(",")]
        s = diff(d, e, n)
        print([E[i] for i in e], [N[j] for j in n])
        print("t=0      ", fmt(figures(d, s)))
        print("cv thresh", fmt(cv_threshold(d, s)))
        for i, r in enumerate(d["rows"]):
            if (s[i] > 0) != (r["label"] == "entailment"):
                print(f"   x {i:2d} {'ob' if r.get('obvious') else '  '} {r['label'][:3]} {s[i]:+.2f} "
                      f"{r['premise']} -> {r['hypothesis']}")
        return
    print("single connective pairs, sorted by old-rows obvious then all (t=0):")
    res = []
    for i, j in itertools.product(range(len(E)), range(len(N))):
        f = figures(d, diff(d, [i], [j]))
        res.append((f["old"], f["new"], f["all"], E[i], N[j]))
    res.sort(key=lambda r: (-r[0][0], -r[0][1]))
    for r in res[:15]:
        print(f"  {r[3]!r:28} {r[4]!r:22} old {r[0][0]:.3f}/{r[0][1]:.3f} new {r[1][0]:.3f}/{r[1][1]:.3f} "
              f"all {r[2][0]:.3f}/{r[2][1]:.3f}")
    print("all connectives of each label:", fmt(figures(d, diff(d, range(len(E)), range(len(N))))))


if __name__ == "__main__":
    main()
