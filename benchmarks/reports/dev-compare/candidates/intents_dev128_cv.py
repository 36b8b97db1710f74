"""Rerank (top, weight) chosen on part of the support_intents dev rows, scored on the rest (issue 24).

    python benchmarks/reports/dev-compare/candidates/intents_dev128_cv.py OLD.npz NEW.npz   (or ALL128.npz)

Reads benchmarks/rerank_sim.py dumps (--dump, --top 5); run from the repository root. Prints accuracy for
each top/weight on the old and new rows and all 128, (top, w) chosen on old scored on new and the other way,
and (top, w) chosen on 7 of 8 folds of all rows, scored on the 8th (10 random splits). Output of the third
pass: benchmarks/reports/dev-compare/support_intents_dev128.txt.
"""
import sys
from collections import Counter

import numpy as np

sys.path.insert(0, "benchmarks")
from rerank_sim import rerank

KEYS = ("direct", "channel", "y", "obvious", "texts")
W = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0, 2.0)
TOPS = (2, 3, 4, 5)


def acc(d: dict, n: int, w: float) -> np.ndarray:
    chosen = rerank(d["direct"], d["channel"], n, w) if w > 0 else d["direct"].argmax(1)
    return chosen == d["y"]


def best(d: dict, tops: tuple[int, ...]) -> tuple[int, float]:
    """The best (top, w) on d; ties go to the smaller top and weight."""
    grid = [(acc(d, n, w).mean(), -n, -w, n, w) for n in tops for w in W]
    top = max(grid)
    return top[3], top[4]


def main() -> None:
    if len(sys.argv) > 2:
        a, b = (dict(np.load(p)) for p in sys.argv[1:3])
    else:
        z = dict(np.load(sys.argv[1]))
        a = {k: z[k][:64] for k in KEYS}
        b = {k: z[k][64:] for k in KEYS}
    for name, d in (("old", a), ("new", b)):
        print(name, "direct", acc(d, 3, 0).mean().round(3),
              " ".join(f"top{n}/w{w}:{acc(d, n, w).mean():.3f}" for n in TOPS for w in W[1:]))
        ob = d["obvious"]
        if ob.any():
            print("  obvious rows", ob.sum(), "direct", acc(d, 3, 0)[ob].mean().round(3),
                  "top3 w.5", acc(d, 3, .5)[ob].mean().round(3))
    allr = {k: np.concatenate([a[k], b[k]]) for k in KEYS}
    print("all128 direct", acc(allr, 3, 0).mean().round(3))
    for n in TOPS:
        print(f"all128 top{n}", " ".join(f"w{w}:{acc(allr, n, w).mean():.3f}" for w in W[1:]))
    for src, dst, lab in ((a, b, "old->new"), (b, a, "new->old")):
        n, w = best(src, TOPS)
        print(lab, "chosen top", n, "w", w, "src", acc(src, n, w).mean().round(3),
              "dst", acc(dst, n, w).mean().round(3))
    rng = np.random.default_rng(0)
    y = allr["y"]
    for tops in ((3,), TOPS):
        res, picks = [], []
        for _ in range(10):
            split = rng.permutation(len(y)) % 8
            right = np.zeros(len(y), dtype=bool)
            for f in range(8):
                n, w = best({k: v[split != f] for k, v in allr.items()}, tops)
                picks.append((n, w))
                right[split == f] = acc({k: v[split == f] for k, v in allr.items()}, n, w)
            res.append(right.mean())
        print(f"CV tops={tops}: mean {np.mean(res):.3f} range {min(res):.3f}-{max(res):.3f}",
              Counter(picks).most_common(4))


if __name__ == "__main__":
    main()
