"""Before/after the one-pipeline change: every output the pipeline feeds, compared byte for byte.

    python benchmarks/ab_pipeline.py --before ../main --n 20 --json benchmarks/reports/ab-pipeline.json

or each side's outputs on their own (in parallel), then compared with a throughput run:

    PYTHONPATH=../main python benchmarks/ab_pipeline.py --worker outputs --tree ../main --out before.json
    python benchmarks/ab_pipeline.py --worker outputs --tree . --out after.json
    python benchmarks/ab_pipeline.py --before ../main --outputs before.json after.json --json R.json

Each tree runs in its own process (``PYTHONPATH`` = the tree; ``--before`` is a checkout, e.g. a
``git worktree`` of main; the after side is this checkout), on the same texts (the first N/2 of
SST-2 and of AG News) and the same loaded models, and writes what it produced:

* ``classify``: the Python API (``classify_many``; labels and every probability as float hex) for
  every shipped config, and the CLI's ``classify`` output file for two of them;
* ``eval --compare``: the CLI's table for sentiment (SST-2) and topic (AG News), and the API's rows;
* ``explain --json``: the CLI's JSON for three texts per shipped config;
* the estimator: ``ZeroShotClassifier.predict_proba`` (float hex) for sentiment and topic;
* Ray: ``lpclassify.ray.classify_dataset`` rows for sentiment (skipped where Ray is not installed).

Then the two sides' outputs are compared item by item; the report says which differ (none, if the
change kept every output). A short throughput side by side (``classify_many`` texts/s, alternating
sides, median of rounds) comes with it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
CONFIGS = ("sentiment", "topic", "spam", "support_intents", "support_tags", "entailment", "sentiment_chat")
HYPOTHESIS = "The text is about money."


def texts_of(n: int) -> tuple[list[str], list[str], list[str], list[str]]:
    def first(name: str, k: int) -> list[dict]:
        with (DATA / name).open(encoding="utf-8") as handle:
            return [json.loads(line) for _, line in zip(range(k), handle, strict=False)]

    sst2, agnews = first("sst2.jsonl", n - n // 2), first("agnews.jsonl", n // 2)
    return ([r["text"] for r in sst2], [r["label_name"] for r in sst2],
            [r["text"] for r in agnews], [r["label_name"] for r in agnews])


def hexes(values) -> list[str]:  # type: ignore[no-untyped-def]
    return [float(v).hex() for v in values]


THREADS: int | None = None  # --threads: every model (and Ray's actors) on this many threads; None: the configs'


def worker(tree: Path, n: int) -> dict:
    """Inside the subprocess: every output, from the tree's own code and configs."""
    from lpclassify import Classifier, cli
    from lpclassify.backends.shared import shared_backend
    from lpclassify.config import load_config
    from lpclassify.evaluation import compare
    from lpclassify.models import resolve_model

    sst2, sst2_labels, agnews, agnews_labels = texts_of(n)
    texts = sst2 + agnews

    def backend_for(config):  # type: ignore[no-untyped-def]
        rt = config.runtime
        return shared_backend(resolve_model(config.model), n_ctx=rt.n_ctx, batch_size=rt.batch_size,
                              threads=THREADS or rt.threads)

    def loader(config, request):  # type: ignore[no-untyped-def]
        config = request.configured(config)
        return Classifier(config, backend_for(config))

    def run_cli(*argv: str) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = cli.main(list(argv), load_classifier=loader)
        return f"exit {status}\n{out.getvalue()}"

    outputs: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in CONFIGS:
            path = tree / "configs" / f"{name}.yaml"
            config = load_config(path)
            clf = Classifier(config, backend_for(config))
            inputs = ([{"premise": t, "hypothesis": HYPOTHESIS} for t in texts] if len(config.fields) > 1
                      else texts)
            outputs[f"api classify {name}"] = [
                [p.label, list(p.labels), sorted((k, float(v).hex()) for k, v in p.probabilities.items()),
                 p.abstained, p.reason] for p in clf.classify_many(inputs)]
            for i in (0, len(sst2), len(texts) - 1):
                if len(config.fields) > 1:
                    argv = ["explain", "-c", str(path), "--json", "-f", f"premise={texts[i]}",
                            "-f", f"hypothesis={HYPOTHESIS}"]
                else:
                    argv = ["explain", "-c", str(path), "--json", texts[i]]
                outputs[f"cli explain --json {name} #{i}"] = run_cli(*argv)
        for name, data, gold in (("sentiment", sst2, sst2_labels), ("topic", agnews, agnews_labels)):
            path = tree / "configs" / f"{name}.yaml"
            labelled = Path(tmp) / f"{name}.jsonl"
            labelled.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(data, gold,
                                                                                                strict=True)))
            outputs[f"cli eval --compare {name}"] = run_cli("eval", "-c", str(path), "-i", str(labelled),
                                                            "--compare")
            config = load_config(path)
            clf = Classifier(config, backend_for(config))
            outputs[f"api compare {name}"] = [
                {k: (float(v).hex() if isinstance(v, float) else v) for k, v in row.as_dict().items()}
                for row in compare(clf, data, gold, few_shot=4)]
            for suffix in ("jsonl", "csv"):
                out = Path(tmp) / f"{name}.out.{suffix}"
                status = run_cli("classify", "-c", str(path), "-i", str(labelled), "-o", str(out))
                outputs[f"cli classify {name} .{suffix}"] = status + out.read_text(encoding="utf-8")
            try:
                from lpclassify.sklearn import ZeroShotClassifier
            except Exception as exc:  # the sklearn extra is not installed
                outputs[f"estimator {name}"] = f"skipped: {exc}"
            else:
                for method in (None, "fitted", "domain", "batch", "pmi"):
                    est = ZeroShotClassifier(str(path), calibration=method, threads=THREADS).fit(data, gold)
                    outputs[f"estimator {name} calibration={method}"] = [hexes(row) for row in est.predict_proba(data)]
        outputs["ray sentiment"] = ray_rows(tree, sst2)
        # the trees' and the temporary directory's paths differ between the sides, nothing else may
        text = json.dumps(outputs).replace(str(tree), "<tree>").replace(tmp, "<tmp>")
    return json.loads(text)


class HashBackend:
    """A fake model for the maths-only comparison: one character per token, each token's log-prob a hash
    of everything before it (varied across texts, labels and tokens; the same in every process)."""

    n_ctx = 4096

    def tokenize(self, text: str, add_bos: bool) -> list[int]:
        return [ord(c) for c in text]

    def token_text(self, token: int) -> str:
        return chr(token)

    def special_tokens(self, text: str) -> dict[str, int]:
        return {}

    def chat_template(self) -> None:
        return None

    def identity(self):  # type: ignore[no-untyped-def]
        from lpclassify.backends.base import ModelIdentity

        return ModelIdentity()

    def describe(self) -> dict[str, object]:
        return {"architecture": "hash"}

    def close(self) -> None:
        pass

    def score(self, texts, *, prefix=()):  # type: ignore[no-untyped-def]
        import zlib

        import numpy as np

        out = []
        for text in texts:
            seed = zlib.crc32(bytes(text.prompt[-200:]) if max(text.prompt, default=0) < 256
                              else str(text.prompt[-200:]).encode())
            out.append([np.array([-(zlib.crc32(str(c.tokens[:i + 1]).encode(), seed) % 4000) / 1000
                                  for i in range(len(c.tokens))]) for c in text.candidates])
        return out

    score_reference = score


def fake_worker(tree: Path, n: int) -> dict:
    """Inside the subprocess: the maths alone, every shipped config x every calibration method, on HashBackend."""
    from lpclassify import Classifier, calibration
    from lpclassify.config import load_config
    from lpclassify.evaluation import compare

    sst2, _, agnews, _ = texts_of(n)
    texts = sst2 + agnews
    outputs: dict[str, object] = {}
    for name in CONFIGS:
        config = load_config(tree / "configs" / f"{name}.yaml")
        inputs = ([{"premise": t, "hypothesis": HYPOTHESIS} for t in texts] if len(config.fields) > 1 else texts)
        gold = [config.label_names[i % len(config.label_names)] for i in range(len(texts))]
        try:
            clf = Classifier(config, HashBackend())
            clf.reference_cache_dir = None
            outputs[f"fake classify {name}"] = [
                [p.label, list(p.labels), sorted((k, float(v).hex()) for k, v in p.probabilities.items())]
                for p in clf.classify_many(inputs)]
            outputs[f"fake explain {name}"] = [clf.explain(t).as_dict() for t in inputs[:3]]
            raw = clf.raw_scores(inputs)
            clf.fit_domain(inputs)
            if config.decision.mode == "single":
                clf.fit(inputs, gold)
            for method in calibration.method_names():
                for norm in ("sum", "mean", "chars"):
                    try:
                        probs = clf.probabilities(raw, method=method, normalize=norm)
                        outputs[f"fake {name} {method} {norm}"] = [hexes(row) for row in probs]
                    except Exception as exc:  # e.g. fitted under another normalization: the same error both sides
                        outputs[f"fake {name} {method} {norm}"] = f"{type(exc).__name__}: {exc}"
            if config.decision.mode == "single":
                outputs[f"fake compare {name}"] = [
                    {k: (float(v).hex() if isinstance(v, float) else v) for k, v in row.as_dict().items()}
                    for row in compare(Classifier(config, HashBackend()), inputs, gold, few_shot=4)]
        except Exception as exc:
            outputs[f"fake {name} error"] = f"{type(exc).__name__}: {exc}"
    outputs.update(fake_cli(tree, texts))
    return json.loads(json.dumps(outputs).replace(str(tree), "<tree>"))


def fake_cli(tree: Path, texts: list[str]) -> dict[str, object]:
    """The command line's classify (JSON Lines, CSV), eval --compare and explain --json, and Ray's row
    layout, on the fake model."""
    import numpy as np

    from lpclassify import Classifier, cli
    from lpclassify.ray import prediction_columns

    def loader(config, request):  # type: ignore[no-untyped-def]
        clf = Classifier(request.configured(config), HashBackend())
        clf.reference_cache_dir = None
        return clf

    def run_cli(*argv: str) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = cli.main(list(argv), load_classifier=loader)
        return f"exit {status}\n{out.getvalue()}"

    outputs: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("sentiment", "topic", "support_intents", "support_tags", "spam"):
            path = str(tree / "configs" / f"{name}.yaml")
            config = Classifier(cli_config(path), HashBackend()).config
            labelled = Path(tmp) / "in.jsonl"
            labelled.write_text("".join(json.dumps({"text": t, "label": config.label_names[i % len(config.labels)],
                                                    "id": i}) + "\n" for i, t in enumerate(texts)))
            for suffix in ("jsonl", "csv"):
                out = Path(tmp) / f"out.{suffix}"
                status = run_cli("classify", "-c", path, "-i", str(labelled), "-o", str(out))
                outputs[f"fake cli classify {name} .{suffix}"] = status + out.read_text(encoding="utf-8")
            outputs[f"fake cli explain --json {name}"] = run_cli("explain", "-c", path, "--json", texts[0])
            if config.decision.mode == "single":
                outputs[f"fake cli eval --compare {name}"] = run_cli("eval", "-c", path, "-i", str(labelled),
                                                                     "--compare")
            clf = loader(config, type("Request", (), {"configured": staticmethod(lambda c: c)})())
            batch = {"text": np.array(texts, dtype=object), "label": np.arange(len(texts))}
            columns = prediction_columns(batch, clf.classify_many(texts), config.label_names)
            outputs[f"fake ray columns {name}"] = {k: [float(v).hex() if isinstance(v, float) else str(v)
                                                       for v in values.tolist()] for k, values in columns.items()}
        return json.loads(json.dumps(outputs).replace(tmp, "<tmp>"))


def cli_config(path: str):  # type: ignore[no-untyped-def]
    from lpclassify.config import load_config

    return load_config(path)


def ray_rows(tree: Path, texts: list[str]) -> object:
    try:
        import ray
    except ImportError:
        return "skipped: ray is not installed"
    from lpclassify.ray import classify_dataset

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        ds = ray.data.from_items([{"text": t, "id": i} for i, t in enumerate(texts)])
        rows = classify_dataset(ds, str(tree / "configs" / "sentiment.yaml"), workers=1, threads=1).take_all()
        return [{k: (float(v).hex() if isinstance(v, float) else str(v)) for k, v in sorted(row.items())}
                for row in rows]
    finally:
        ray.shutdown()


def speed(tree: Path, n: int) -> dict:
    """Inside the subprocess: classify_many texts/s on the topic config (contextual calibration)."""
    from lpclassify import Classifier

    sst2, _, agnews, _ = texts_of(n)
    texts = sst2 + agnews
    clf = Classifier.from_config(tree / "configs" / "topic.yaml")
    clf.classify_many(texts[:4])  # warm-up: the prefix, the reference scores
    start = time.perf_counter()
    clf.classify_many(texts)
    return {"texts_per_s": len(texts) / (time.perf_counter() - start)}


def run_side(tree: Path, mode: str, n: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    threads = ["--threads", str(THREADS)] if THREADS else []
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([sys.executable, __file__, "--worker", mode, "--tree", str(tree), "--n", str(n),
                        "--out", out.name, *threads], env=env, check=True, cwd=tree)
        return json.loads(Path(out.name).read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, help="a checkout of the code before (e.g. a worktree of main)")
    parser.add_argument("--after", type=Path, help="a checkout of the code after (default: this one)")
    parser.add_argument("--fake", action="store_true",
                        help="also compare the maths alone on a fake model: every shipped config x every method")
    parser.add_argument("--outputs", type=Path, nargs=2, metavar=("BEFORE.json", "AFTER.json"),
                        help="compare these --worker outputs files instead of running both sides now")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--speed-n", type=int, default=64, help="texts per throughput round")
    parser.add_argument("--rounds", type=int, default=2, help="throughput rounds per side (alternating)")
    parser.add_argument("--threads", type=int, help="model threads on both sides (default: each config's)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", choices=["outputs", "speed", "fake"])
    parser.add_argument("--tree", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    global THREADS
    THREADS = args.threads
    if args.worker:
        work = {"outputs": worker, "speed": speed, "fake": fake_worker}[args.worker]
        result = work(args.tree, args.n)
        args.out.write_text(json.dumps(result))
        return
    trees = {"before": args.before.resolve(), "after": (args.after or ROOT).resolve()}
    if args.outputs:  # each side's outputs from an earlier --worker outputs run (e.g. both run in parallel)
        sides = {side: json.loads(path.read_text()) for side, path in zip(trees, args.outputs, strict=True)}
    else:
        sides = {side: run_side(tree, "outputs", args.n) for side, tree in trees.items()}
    if args.fake:
        for side, tree in trees.items():
            sides[side].update(run_side(tree, "fake", args.n))
    keys = sorted(set(sides["before"]) | set(sides["after"]))
    items = {key: sides["before"].get(key) == sides["after"].get(key) for key in keys}
    skipped = sorted(k for k in keys if str(sides["after"].get(k)).startswith("skipped"))
    rates: dict[str, list[float]] = {"before": [], "after": []}
    for i in range(args.rounds):
        for side in (("before", "after") if i % 2 == 0 else ("after", "before")):
            rates[side].append(run_side(trees[side], "speed", args.speed_n)["texts_per_s"])
    before, after = (statistics.median(rates["before"]), statistics.median(rates["after"])) if args.rounds else (1, 1)
    report = {"n_texts": args.n, "threads": args.threads, "command": " ".join(sys.argv),
              "before_commit": commit_of(trees["before"]), "after_commit": commit_of(trees["after"]),
              "before": str(args.before), "after": str(args.after or "."),
              "identical": all(items.values()),
              "items": items, "skipped": skipped, "different": [k for k, same in items.items() if not same],
              "throughput": {"texts": args.speed_n, "rounds": args.rounds, "before_texts_per_s": rates["before"],
                             "after_texts_per_s": rates["after"],
                             "ratio_after_before": after / before if args.rounds else None},
              **provenance()}
    for key, same in items.items():
        note = "  (skipped)" if key in skipped else ""
        print(f"{'identical' if same else 'DIFFERENT'}  {key}{note}")
    print(f"all {len(items)} items identical: {report['identical']}")
    if args.rounds:
        print(f"throughput after/before {after / before:.3f} (median texts/s {before:.2f} -> {after:.2f}, "
              f"{args.rounds} rounds of {args.speed_n} texts each, sides alternating)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


def commit_of(tree: Path) -> str:
    return subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def provenance() -> dict[str, object]:
    import platform

    def git(*argv: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *argv], capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}}


if __name__ == "__main__":
    main()
