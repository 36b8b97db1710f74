"""Can a new user trust the shipped configs out of the box? Every config on its own test set.

    python benchmarks/trust.py                                   # -> benchmarks/reports/trust.json + .md
    python benchmarks/trust.py --configs-from main --json benchmarks/reports/trust-before.json
    python benchmarks/trust.py --split dev --json /tmp/trust-dev.json   # while choosing settings

Each shipped config (configs/<name>.yaml) is run as a user would run it (its own model, calibration,
thresholds, demonstrations: ``Classifier.classify_many``) on benchmarks/data/<name>/test.jsonl, a set
written for this project and never used to choose settings (the dev.jsonl beside it is). Reported
per config: accuracy on the rows marked ``"obvious": true`` and on the whole set (an abstention
counts as wrong). Multi-label configs: exact-set accuracy (the predicted set equals the true set),
micro-F1 over (text, label) decisions, and each label's false-positive rate on the texts whose true
tags do not include it. One model is loaded per model file and shared by the configs that use it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CONFIGS = ("sentiment", "sentiment_chat", "spam", "topic", "support_tags", "support_intents", "entailment")
META = ("label", "obvious")  # JSONL keys that are not input fields


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout.strip()


def commit() -> str:
    """The short commit, "-dirty" when files other than reports differ from it."""
    dirty = git("status", "--porcelain", "--", ".", ":!benchmarks/reports")
    return git("rev-parse", "--short", "HEAD") + ("-dirty" if dirty else "")


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version()}


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


def model_input(row: dict[str, Any], fields: tuple[str, ...]) -> Any:
    """The text for a one-field prompt, else the record of the fields the prompt names."""
    if fields == ("text",):
        return row["text"]
    return {name: row[name] for name in fields}


def rate(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def single_metrics(rows: list[dict[str, Any]], predictions: list[Any]) -> dict[str, Any]:
    right = [p.label == r["label"] for r, p in zip(rows, predictions, strict=True)]
    obvious = [ok for ok, r in zip(right, rows, strict=True) if r.get("obvious")]
    return {"n": len(rows), "n_obvious": len(obvious), "obvious_accuracy": rate(sum(obvious), len(obvious)),
            "accuracy": rate(sum(right), len(right)), "abstained": sum(p.abstained for p in predictions)}


def multi_metrics(rows: list[dict[str, Any]], predictions: list[Any], names: tuple[str, ...]) -> dict[str, Any]:
    truth = [set(r["label"]) for r in rows]
    chosen = [set(p.labels) for p in predictions]
    exact = [t == c for t, c in zip(truth, chosen, strict=True)]
    obvious = [ok for ok, r in zip(exact, rows, strict=True) if r.get("obvious")]
    tp = sum(len(t & c) for t, c in zip(truth, chosen, strict=True))
    fp = sum(len(c - t) for t, c in zip(truth, chosen, strict=True))
    fn = sum(len(t - c) for t, c in zip(truth, chosen, strict=True))
    fpr = {}
    for name in names:
        negatives = [c for t, c in zip(truth, chosen, strict=True) if name not in t]
        fpr[name] = rate(sum(name in c for c in negatives), len(negatives))
    return {"n": len(rows), "n_obvious": len(obvious), "obvious_accuracy": rate(sum(obvious), len(obvious)),
            "accuracy": rate(sum(exact), len(exact)), "exact_set_accuracy": rate(sum(exact), len(exact)),
            "micro_f1": round(2 * tp / (2 * tp + fp + fn), 4) if tp + fp + fn else None,
            "false_positive_rate": fpr, "max_false_positive_rate": max(v for v in fpr.values() if v is not None)}


def scoring_key(config: Any, model: str, inputs: list[Any]) -> str:
    """What the raw scores depend on: the model, the prompt, the completions, the examples, the inputs --
    not the calibration, biases, temperature or thresholds, which apply after scoring."""
    labels = [(label.name, label.completions, label.description) for label in config.labels]
    examples = [(e.fields, e.labels) for e in config.examples]
    key = [model, repr(config.prompt), labels, examples, config.example_separator, repr(config.decision.multi),
           config.scoring.normalize, config.scoring.aggregate, repr(config.runtime), inputs]
    if config.scoring.rerank is not None:  # its channel scores ride with the raw scores (on the calibration too)
        key += [repr(config.scoring.rerank), config.scoring.calibration, config.biases, config.scoring.temperature]
    return hashlib.sha256(json.dumps(key, default=repr).encode()).hexdigest()[:24]


def evaluate_config(name: str, config_dir: Path, split: str, model: str | None,
                    threads: int | None, cache: Path | None = None) -> dict[str, Any]:
    from lpclassify import Classifier
    from lpclassify.backends.shared import shared_backend
    from lpclassify.config import load_config
    from lpclassify.models import resolve_model

    config = load_config(config_dir / f"{name}.yaml")
    rows = read_rows(ROOT / "benchmarks" / "data" / name / f"{split}.jsonl")
    path = resolve_model(model or config.model)
    rt = config.runtime
    backend = shared_backend(path, n_ctx=rt.n_ctx, batch_size=rt.batch_size, threads=threads or rt.threads)
    clf = Classifier(config, backend)
    inputs = [model_input(r, config.fields) for r in rows]
    started = time.perf_counter()
    if cache is None or config.scoring.calibration == "batch":  # batch: its chunks are classify_many's
        predictions = clf.classify_many(inputs)
    else:  # the same predictions from raw scores kept on disk for what the model reads
        file = cache / f"{scoring_key(config, Path(path).name, inputs)}.pkl"
        if file.exists():
            raw = pickle.loads(file.read_bytes())
        else:
            raw = clf.raw_scores(inputs)
            cache.mkdir(parents=True, exist_ok=True)
            file.write_bytes(pickle.dumps(raw))
        clf.calibrator.prepare()
        predictions = clf.decide(raw)
    seconds = time.perf_counter() - started
    multi = config.decision.mode == "multi"
    # multi-label: the tags a text can be given (not the label that stands for "none of them")
    tags = tuple(name for name in config.label_names if name != config.decision.multi.none)
    result = multi_metrics(rows, predictions, tags) if multi else single_metrics(rows, predictions)
    result.update(mode=config.decision.mode, model=Path(path).name, calibration=config.scoring.calibration,
                  direction=config.scoring.direction, n_examples=len(config.examples), seconds=round(seconds, 1))
    result["predictions"] = [
        {"input": model_input(r, config.fields), "label": r["label"], "obvious": bool(r.get("obvious")),
         "predicted": sorted(p.labels) if multi else p.label,
         "right": (set(p.labels) == set(r["label"])) if multi else p.label == r["label"],
         "probabilities": {k: round(v, 3) for k, v in sorted(p.probabilities.items(), key=lambda kv: -kv[1])[:5]}}
        for r, p in zip(rows, predictions, strict=True)]
    return result


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def markdown(document: dict[str, Any]) -> str:
    lines = [f"# Shipped configs on their {document['split']} sets", "",
             f"`{document['command']}` (configs from `{document['configs_from']}`), "
             f"{document['machine']['processor']}, {document['machine']['cpus']} CPUs; each row names the commit "
             "it was measured at.", "",
             "| config | commit | model | n (obvious) | obvious right | all right | abstained | notes |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in document["configs"].items():
        notes = []
        if r["mode"] == "multi":
            fpr = ", ".join(f"{k} {pct(v)}" for k, v in r["false_positive_rate"].items())
            notes.append(f"exact-set {pct(r['exact_set_accuracy'])}, micro-F1 {r['micro_f1']:.3f}; "
                         f"false-positive rate per label: {fpr}")
        notes.append(f"{'channel scoring, ' if r.get('direction') == 'channel' else ''}"
                     f"calibration {r['calibration']}, {r['n_examples']} demonstrations")
        if r.get("reused"):
            notes.append(r["reused"])
        commit = r.get("commit", document["commit"])
        lines.append(f"| {name} | `{commit}` | {r['model']} | {r['n']} ({r['n_obvious']}) | "
                     f"{pct(r['obvious_accuracy'])} | "
                     f"{pct(r['accuracy'])} | {r.get('abstained', '-')} | {'; '.join(notes)} |")
    return "\n".join(lines) + "\n"


STAMP = "# Measured by benchmarks/trust.py"


def stamp_configs(document: dict[str, Any]) -> None:
    """Write each config's measured figures into its closing comment (replacing an older one), so the
    figures a config states are the report's, never typed by hand."""
    for name, r in document["configs"].items():
        path = ROOT / "configs" / f"{name}.yaml"
        text = path.read_text(encoding="utf-8")
        text = text[:text.index(STAMP)].rstrip("\n") + "\n" if STAMP in text else text
        line = (f"{STAMP} (benchmarks/reports/trust.md, commit {r.get('commit', document['commit'])}, "
                f"{r['model']}) on benchmarks/data/{name}/test.jsonl, never used to choose: "
                f"{pct(r['obvious_accuracy'])} of its {r['n_obvious']} obvious cases and {pct(r['accuracy'])} "
                f"of all {r['n']} answered right")
        if r["mode"] == "multi":
            line += (f" (exact set); micro-F1 {r['micro_f1']:.3f}; most often wrongly given: "
                     f"{max(r['false_positive_rate'], key=lambda k: r['false_positive_rate'][k])} "
                     f"on {pct(r['max_false_positive_rate'])} of the texts without it")
        path.write_text(text + "\n" + "\n".join(textwrap.wrap(line + ".", 98, initial_indent="",
                                                               subsequent_indent="# ")) + "\n", encoding="utf-8")


def before_after(before: dict[str, Any], after: dict[str, Any]) -> str:
    """One table: each config's test figures before and after (the two reports' rows side by side)."""
    lines = ["# Shipped configs before and after issue 24", "",
             f"Before: configs from `{before['configs_from']}`; after: the working tree's. Both from "
             "`python benchmarks/trust.py` on benchmarks/data/<config>/test.jsonl (rows of each report name their "
             "commit); an abstention counts as wrong.", "",
             "| config | obvious right, before | obvious right, after | all right, before | all right, after | "
             "multi-label: exact set / micro-F1 / worst false-positive rate, before -> after |",
             "|---|---|---|---|---|---|"]
    for name, a in after["configs"].items():
        b = before["configs"].get(name)
        if b is None:
            continue
        multi = "-"
        if a["mode"] == "multi":
            multi = " -> ".join(f"{pct(r['exact_set_accuracy'])} / {r['micro_f1']:.3f} / "
                                f"{pct(r['max_false_positive_rate'])}" for r in (b, a))
        lines.append(f"| {name} | {pct(b['obvious_accuracy'])} | {pct(a['obvious_accuracy'])} | {pct(b['accuracy'])} | "
                     f"{pct(a['accuracy'])} | {multi} |")
    return "\n".join(lines) + "\n"


def reuse_unchanged(args: argparse.Namespace) -> None:
    """Copy into --json the results, from an earlier report, of configs that score and decide exactly as they
    did at that report's revision (the same settings; comments may differ): the same model run on the same
    test set gives the same answers, so they need not be run again."""
    from lpclassify.config import load_config

    old = json.loads(args.reuse_unchanged.read_text(encoding="utf-8"))
    document = json.loads(args.json.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        for entry in git("ls-tree", "--name-only", old["configs_from"], "configs/").splitlines():
            (Path(tmp) / Path(entry).name).write_text(git("show", f"{old['configs_from']}:{entry}") + "\n")
        for name in args.configs:
            then = load_config(Path(tmp) / f"{name}.yaml")
            now = load_config(ROOT / "configs" / f"{name}.yaml")
            if replace(then, source="") != replace(now, source="") or name not in old["configs"]:
                print(f"{name}: changed since {old['configs_from']} (or not in {args.reuse_unchanged}); run it")
                continue
            reused = f"settings unchanged since {old['configs_from']}; measured for {args.reuse_unchanged.name}"
            document["configs"][name] = dict(old["configs"][name], commit=old["commit"], reused=reused)
            print(f"{name}: unchanged, results copied from {args.reuse_unchanged}")
    document["configs"] = {name: document["configs"][name] for name in CONFIGS if name in document["configs"]}
    args.json.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    args.json.with_suffix(".md").write_text(markdown(document), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--split", default="test", choices=("test", "dev"))
    parser.add_argument("--configs-from", metavar="REV", help="evaluate configs/ as of this git revision")
    parser.add_argument("--model", help="override every config's model (default: each config's own)")
    parser.add_argument("--update", action="store_true",
                        help="replace only these configs' results in --json, keep the others (each records its commit)")
    parser.add_argument("--stamp-configs", action="store_true",
                        help="only rewrite each config's closing comment with its figures from --json")
    parser.add_argument("--cache", type=Path, metavar="DIR",
                        help="keep raw scores here and reuse them when only calibration/bias/thresholds changed")
    parser.add_argument("--reuse-unchanged", type=Path, metavar="REPORT.json",
                        help="only copy REPORT's results of --configs that have not changed since its revision")
    parser.add_argument("--before-after", type=Path, metavar="BEFORE.json",
                        help="only write trust-before-after.md beside --json: BEFORE's figures next to --json's")
    parser.add_argument("--threads", type=int, help="llama.cpp threads (1 on a crowded machine)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "reports" / "trust.json")
    args = parser.parse_args()

    if args.stamp_configs:
        stamp_configs(json.loads(args.json.read_text(encoding="utf-8")))
        return
    if args.before_after:
        path = args.json.with_name("trust-before-after.md")
        path.write_text(before_after(json.loads(args.before_after.read_text(encoding="utf-8")),
                                     json.loads(args.json.read_text(encoding="utf-8"))), encoding="utf-8")
        print(f"wrote {path}")
        return
    if args.reuse_unchanged:
        reuse_unchanged(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        config_dir = ROOT / "configs"
        if args.configs_from:  # the configs of another revision, labels files included
            config_dir = Path(tmp)
            for entry in git("ls-tree", "--name-only", args.configs_from, "configs/").splitlines():
                (config_dir / Path(entry).name).write_text(git("show", f"{args.configs_from}:{entry}") + "\n")
        results: dict[str, Any] = {}
        if args.update and args.json.exists():  # keep the other configs' results, measured earlier
            results = {k: v for k, v in json.loads(args.json.read_text())["configs"].items() if k not in args.configs}
        measured_at = commit()
        for name in args.configs:
            results[name] = evaluate_config(name, config_dir, args.split, args.model, args.threads, args.cache)
            r = results[name]
            r["commit"] = measured_at
            print(f"{name}: obvious {pct(r['obvious_accuracy'])}, all {pct(r['accuracy'])} "
                  f"({r['n']} texts, {r['seconds']} s)", flush=True)
            write(args, results)  # after each config: a long run that is stopped keeps what it measured


def write(args: argparse.Namespace, results: dict[str, Any]) -> None:
    document = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix().split(str(ROOT) + "/")[-1],
                                                  *sys.argv[1:]]),
                "commit": commit(),
                "configs_from": args.configs_from or "working tree", "split": args.split, "machine": machine(),
                "configs": {name: results[name] for name in CONFIGS if name in results},
                "complete": set(args.configs) <= set(results)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    args.json.with_suffix(".md").write_text(markdown(document), encoding="utf-8")
    if document["complete"]:
        print(f"wrote {args.json} and {args.json.with_suffix('.md')}")


if __name__ == "__main__":
    main()
