"""Label sets without a config (``Classifier.from_labels``) against the shipped hand-written configs.

    python benchmarks/from_labels.py --n 200 --models smollm2-135m gemma-3-270m

For SST-2 (sentiment.yaml) and AG News (topic.yaml), rows ``--offset``.. of ../shared/data: the
shipped config, and ``from_labels`` given only that config's label names (the default prompt, which
lists them; each label's completion is its name; contextual calibration), on the same model and
texts in one run. Writes benchmarks/reports/from_labels.json (with the commit and the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
SETS = {"sst2": ("sst2.jsonl", "sentiment"), "agnews": ("agnews.jsonl", "topic")}


def meta() -> dict[str, object]:
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return {"commit": commit, "machine": f"{platform.machine()} {platform.processor() or ''} "
            f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}".replace("  ", " "),
            "python": platform.python_version()}


def accuracy(clf, texts: list[str], gold: list[str]) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    predicted = [p.label for p in clf.classify_many(texts)]
    return sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold), time.perf_counter() - start


def main() -> None:
    from lpclassify import Classifier
    from lpclassify.backends.llama_cpp import LlamaCppBackend
    from lpclassify.labelsets import DEFAULT_LABELS_PROMPT
    from lpclassify.models import resolve_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--offset", type=int, default=0, help="first row used")
    parser.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma-3-270m"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "reports" / "from_labels.json"))
    args = parser.parse_args()
    rows_out = []
    print("| model | data | N | shipped config | from_labels (default prompt) |\n|---|---|---|---|---|")
    for model in args.models:
        backend = LlamaCppBackend(resolve_model(model), n_ctx=1024, threads=args.threads)
        for name, (data, config) in SETS.items():
            with (DATA / data).open(encoding="utf-8") as f:
                rows = [json.loads(line) for i, line in enumerate(f) if args.offset <= i < args.offset + args.n]
            texts, gold = [r["text"] for r in rows], [r["label_name"] for r in rows]
            shipped = Classifier.from_config(config, backend=backend)
            plain = Classifier.from_labels(list(shipped.config.label_names), backend=backend)
            acc_shipped, s_shipped = accuracy(shipped, texts, gold)
            acc_plain, s_plain = accuracy(plain, texts, gold)
            rows_out.append({"model": model, "data": name, "n": len(rows), "offset": args.offset, "config": config,
                             "labels": list(shipped.config.label_names), "shipped_accuracy": acc_shipped,
                             "from_labels_accuracy": acc_plain, "shipped_seconds": s_shipped,
                             "from_labels_seconds": s_plain})
            print(f"| {model} | {name} | {len(rows)} | {100 * acc_shipped:.1f}% | {100 * acc_plain:.1f}% |",
                  flush=True)
            report = {**meta(), "command": " ".join(["python", "benchmarks/from_labels.py", *sys.argv[1:]]),
                      "default_prompt": DEFAULT_LABELS_PROMPT, "results": rows_out}
            Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")  # after every row
        backend.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
