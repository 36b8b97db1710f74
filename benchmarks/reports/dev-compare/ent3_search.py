"""Every k-by-k choice of ent3_screen.py connectives, ranked by the 64 old dev rows (obvious + all), with the
34 rows added in the third pass as a check; then ranked by all 98 rows.

    python benchmarks/reports/dev-compare/ent3_search.py DUMP.pkl [K]
"""
import itertools
import pickle
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ent3_analyse import diff, figures

d = pickle.loads(Path(sys.argv[1]).read_bytes())
E, N = d["ent"], d["not"]
k = int(sys.argv[2]) if len(sys.argv) > 2 else 2


def line(f, e, n) -> str:
    cells = " ".join(f"{k} {v[0]:.3f}/{v[1]:.3f}" for k, v in f.items())
    return f"  {[E[i] for i in e]} {[N[j] for j in n]} {cells}"


res = []
for e in itertools.combinations(range(len(E)), k):
    for n in itertools.combinations(range(len(N)), k):
        f = figures(d, diff(d, e, n))
        res.append((f, e, n))
def key(r):
    return (-(r[0]["old"][0] + r[0]["old"][1]),)


res.sort(key=key)
print("top by old obvious+all:")
for f, e, n in res[:12]:
    print(line(f, e, n))
# how does old rank predict new: mean new of top 20 vs overall
top = res[:20]
print("mean new ob of top20 by old", np.mean([r[0]["new"][0] for r in top]),
      "overall mean", np.mean([r[0]["new"][0] for r in res]))
res.sort(key=lambda r: -(r[0]["all"][0] + r[0]["all"][1]))
print("top by all-98 obvious+all:")
for f, e, n in res[:8]:
    print(line(f, e, n))
