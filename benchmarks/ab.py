"""Before/after: the same texts classified by two commits of lpclassify, side by side in one run.

    python benchmarks/ab.py --before a5f4e85 --n 200             # HEAD's working tree vs commit a5f4e85
    python benchmarks/ab.py --before main~3 --models smollm2-135m --data sst2 --rounds 5
    python benchmarks/ab.py --before HEAD --env-before LPCLASSIFY_PIN_KQUANT=0   # one commit, two settings

Each commit runs in its own process (``PYTHONPATH`` points at a ``git worktree`` of it; the
installed llama-cpp-python and models are shared), through the public API both have
(``Classifier.from_config`` + ``classify_many``), after a warm-up. Rounds alternate the order
(before-after, after-before, ...) so that the shared machine's noise falls on both alike; the
report gives each side's median texts/s, the after/before ratio, and whether every label and
probability is bit-identical.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
SETS = {"agnews": ("agnews.jsonl", "topic.yaml"), "sst2": ("sst2.jsonl", "sentiment.yaml")}


def worker(tree: Path, model: str, dataset: str, n: int) -> dict:
    """Runs inside the subprocess: classify the first n texts with the tree's own config."""
    from lpclassify import Classifier

    data, config = SETS[dataset]
    with (DATA / data).open(encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for _, line in zip(range(n), handle, strict=False)]
    clf = Classifier.from_config(tree / "configs" / config, model=model)
    clf.classify_many(texts[:8])  # warm-up: the pinned prefix, the calibration's reference scores
    start = time.perf_counter()
    predictions = clf.classify_many(texts)
    seconds = time.perf_counter() - start
    return {"texts_per_s": n / seconds,
            "outputs": [[p.label, [p.probabilities[k].hex() for k in sorted(p.probabilities)]] for p in predictions]}


@contextlib.contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """A detached checkout of ``revision`` in a temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="lpclassify-ab-") as tmp:
        path = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(path), revision],
                       check=True)
        try:
            yield path
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False)


def run(tree: Path, model: str, dataset: str, n: int, extra_env: dict[str, str] | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), **(extra_env or {})}
    command = [sys.executable, __file__, "--worker", str(tree), "--models", model, "--data", dataset, "--n", str(n)]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"the worker for {tree} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", help="the git revision to compare against (required)")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["gemma-3-270m", "smollm2-135m"])
    parser.add_argument("--data", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--env-before", nargs="*", default=[], metavar="NAME=VALUE",
                        help="environment variables set for the before side only (e.g. a switch, with --before HEAD)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(Path(args.worker), args.models[0], args.data[0], args.n)))
        return
    if not args.before:
        parser.error("--before REVISION is required")
    if any("=" not in item for item in args.env_before):
        parser.error("--env-before takes NAME=VALUE pairs")
    env_before = dict(item.split("=", 1) for item in args.env_before)
    label = " ".join([args.before, *args.env_before])
    print(f"| model | data | before t/s ({label}) | after t/s (working tree) | after/before | identical |")
    print("|---|---|---|---|---|---|")
    with worktree(args.before) as before:
        for model in args.models:
            for dataset in args.data:
                rates: dict[str, list[float]] = {"before": [], "after": []}
                outputs: dict[str, list] = {}
                for round_ in range(args.rounds):
                    order = [("before", before), ("after", ROOT)]
                    for side, tree in order if round_ % 2 == 0 else order[::-1]:
                        result = run(tree, model, dataset, args.n, env_before if side == "before" else None)
                        rates[side].append(result["texts_per_s"])
                        outputs.setdefault(side, result["outputs"])
                b, a = statistics.median(rates["before"]), statistics.median(rates["after"])
                same = outputs["before"] == outputs["after"]
                print(f"| {model} | {dataset} | {b:.2f} | {a:.2f} | {a / b:.3f} | {'yes' if same else 'NO'} |",
                      flush=True)


if __name__ == "__main__":
    main()
