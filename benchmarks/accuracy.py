"""Accuracy of the shipped configs on the first N rows of the shared benchmark sets.

    python benchmarks/accuracy.py --n 300 --models gemma-3-270m smollm2-135m
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
SETS = {"sst2": ("sst2.jsonl", "sentiment.yaml"), "agnews": ("agnews.jsonl", "topic.yaml")}


def main() -> None:
    from lpclassify import Classifier

    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--models", nargs="+", default=["gemma-3-270m", "smollm2-135m"])
    args = parser.parse_args()
    print("| model | data | config | N | accuracy | uncalibrated | s |\n|---|---|---|---|---|---|---|")
    for model in args.models:
        for name, (data, config) in SETS.items():
            with (DATA / data).open(encoding="utf-8") as handle:
                rows = [json.loads(line) for _, line in zip(range(args.n), handle, strict=False)]
            clf = Classifier.from_config(ROOT / "configs" / config, model=model)
            start = time.perf_counter()
            raw = clf.raw_scores([r["text"] for r in rows])
            seconds = time.perf_counter() - start
            gold = [r["label_name"] for r in rows]
            for calibrate in (True, False):
                probs = clf.probabilities(raw, calibrate=calibrate)
                predicted = [clf.classes_[i] for i in probs.argmax(axis=1)]
                accuracy = sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(rows)
                if calibrate:
                    calibrated = accuracy
                else:
                    print(f"| {model} | {name} | {config} ({clf.config.scoring.calibration}) | {len(rows)} | "
                          f"{100 * calibrated:.1f}% | {100 * accuracy:.1f}% | {seconds:.0f} |")


if __name__ == "__main__":
    main()
