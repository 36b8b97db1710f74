"""The ``eval`` and ``calibrate`` subcommands: measure a config on labelled JSONL, fit a calibration file.

``cli.py`` calls :func:`register` with its subparsers; each subcommand sets ``func`` to a handler
``(args) -> int`` that prints its results and raises :class:`~lpclassify.errors.LpclassifyError`
subclasses for anything the user can fix (the main CLI turns those into exit code 2). Also
runnable alone: ``python -m lpclassify.cli_eval eval -c configs/sentiment.yaml -i data.jsonl``.

    lpclassify eval -c configs/sentiment.yaml -i sst2.jsonl --label-field label_name --limit 1000 --compare
    lpclassify calibrate -c configs/sentiment.yaml -i dev.jsonl -o sentiment.calibration.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from .config import CALIBRATIONS, NORMALIZATIONS, load_config
from .errors import InputError, LpclassifyError


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``eval`` and ``calibrate`` to an argparse subparsers object."""
    ev = subparsers.add_parser(
        "eval", help="measure a config on labelled JSONL: accuracy, F1, calibration, abstention",
        description="Classify a labelled JSON-lines file and print accuracy, macro-F1, per-label "
                    "precision/recall/F1, the confusion matrix, expected calibration error (15 bins), "
                    "Brier score and coverage/accuracy when abstaining. --compare adds every calibration "
                    "method x normalization, all from the same single model pass.")
    _common(ev)
    ev.add_argument("--compare", action="store_true",
                    help="also compare every calibration method x normalization on the same scores")
    ev.add_argument("--calibration", choices=CALIBRATIONS, help="override scoring.calibration")
    ev.add_argument("--normalize", choices=NORMALIZATIONS, help="override scoring.normalize")
    ev.add_argument("--report", metavar="OUT.json", help="write every metric (and each prediction) as JSON")
    ev.add_argument("--plot", metavar="DIR", help="write a reliability diagram and a confusion-matrix heat map "
                                                  "(PNG; needs the 'plot' extra: pip install 'lpclassify[plot]')")
    ev.set_defaults(func=run_eval)

    cal = subparsers.add_parser(
        "calibrate", help="fit a calibration file (bias + temperature, domain prior) from labelled JSONL",
        description="Fit per-label biases and a temperature on labelled examples (minimum log-loss) and a "
                    "domain-context prior from the same texts; write them as JSON for "
                    "scoring.calibration_file (a path relative to the config file).")
    _common(cal)
    cal.add_argument("-o", "--output", required=True, metavar="CALIBRATION.json", help="file to write")
    cal.add_argument("--domain-samples", type=int, default=20, metavar="N",
                     help="random-word inputs for the domain prior (default 20)")
    cal.add_argument("--seed", type=int, default=0, help="seed for the domain inputs (default 0)")
    cal.set_defaults(func=run_calibrate)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, metavar="CONFIG",
                        help="a config file, or the name of a shipped config (sentiment, topic, ...)")
    parser.add_argument("-i", "--input", required=True, metavar="LABELED.jsonl",
                        help="JSON lines with a text field and a label field")
    parser.add_argument("--text-field", default="text", help="field holding the text (default: text)")
    parser.add_argument("--label-field", default="label",
                        help="field holding the true label: a label name, or an integer index in the config's "
                             "label order (or --label-order's) (default: label)")
    parser.add_argument("--label-order", metavar="NAME,NAME,...",
                        help="what integer labels mean, e.g. negative,positive for SST-2's 0/1")
    parser.add_argument("--limit", type=int, metavar="N", help="use only the first N records")
    from .cli import add_model_options

    add_model_options(parser)  # --model, --download, --threads, --batch-size


def _load(args: argparse.Namespace, *, for_calibrate: bool = False):  # type: ignore[no-untyped-def]
    from .cli import load_classifier, resolve_config
    from .evaluation import read_labeled_jsonl

    if args.limit is not None and args.limit < 1:
        raise InputError("--limit must be at least 1")
    args.config = str(resolve_config(args.config))  # a path, or the name of a shipped config
    config = load_config(args.config)
    if for_calibrate:  # the file we are about to write may be the one the config points to
        config = replace(config, scoring=replace(config.scoring, calibration="none", calibration_file=None))
    texts, labels = read_labeled_jsonl(args.input, text_field=args.text_field, label_field=args.label_field,
                                       limit=args.limit)
    order = [name.strip() for name in args.label_order.split(",")] if args.label_order else None
    clf = load_classifier(config, args)
    return clf, texts, labels, order


def _progress(out: TextIO):  # type: ignore[no-untyped-def]
    def report(done: int, total: int) -> None:
        out.write(f"\rscored {done}/{total} texts")
        if done >= total:
            out.write("\n")
        out.flush()

    return report


def run_eval(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``lpclassify eval``: print the metrics (and the comparison table), write report and plots."""
    from .evaluation import compare, evaluate, score_texts, to_indices, write_plots

    out = out or sys.stdout
    if args.plot:  # fail before the long model pass, not after it
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            from .evaluation import MissingDependencyError

            raise MissingDependencyError("--plot needs matplotlib: pip install 'lpclassify[plot]'") from None
    clf, texts, labels, order = _load(args)
    to_indices(labels, clf.config.label_names, order)  # check labels before the model pass
    raw = score_texts(clf, texts, progress=_progress(sys.stderr) if sys.stderr.isatty() else None)
    report = evaluate(clf, texts, labels, raw=raw, method=args.calibration, normalize=args.normalize,
                      label_order=order)
    model = getattr(clf.backend, "model_path", None)
    out.write(f"{clf.config.name}: {report.n} texts from {args.input}, model {Path(model).name if model else '?'}\n")
    out.write(format_report(report))
    rows = None
    if args.compare:
        rows = compare(clf, texts, labels, raw=raw, label_order=order)
        out.write("\nEvery calibration x normalization on the same scores (one model pass):\n\n")
        out.write(format_compare(rows))
    if args.report:
        document: dict[str, Any] = {"config": str(args.config), "input": str(args.input), "model": str(model),
                                    **report.as_dict(predictions=True)}
        if rows is not None:
            document["compare"] = [row.as_dict() for row in rows]
        try:
            Path(args.report).write_text(json.dumps(_clean(document), indent=1) + "\n", encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write the report {args.report}: {exc.strerror}") from None
        out.write(f"\nreport written to {args.report}\n")
    if args.plot:
        paths = write_plots(report, args.plot, stem=clf.config.name)
        out.write("plots written: " + ", ".join(str(p) for p in paths) + "\n")
    return 0


def run_calibrate(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``lpclassify calibrate``: fit bias/temperature and a domain prior; write the calibration file."""
    from .evaluation import score_texts, to_indices

    out = out or sys.stdout
    if args.domain_samples < 1:
        raise InputError("--domain-samples must be at least 1")
    clf, texts, labels, order = _load(args, for_calibrate=True)
    y = to_indices(labels, clf.config.label_names, order)
    if len(set(y.tolist())) < 2:
        raise InputError("the labelled examples must cover at least two labels to fit a calibration")
    raw = score_texts(clf, texts, progress=_progress(sys.stderr) if sys.stderr.isatty() else None)
    clf.fit_scores(raw, y)
    clf.fit_domain(texts, n_samples=args.domain_samples, seed=args.seed)
    try:
        clf.save_calibration(args.output)
    except OSError as exc:
        raise InputError(f"cannot write {args.output}: {exc.strerror}") from None
    fit = clf.fitted_
    assert fit is not None
    prior = clf.domain_prior()
    out.write(f"fitted on {fit.n_examples} examples: temperature {fit.temperature:.3f}, bias "
              + ", ".join(f"{name} {b:+.3f}" for name, b in zip(clf.config.label_names, fit.bias, strict=True))
              + f"\nlog-loss on these examples: {fit.log_loss_before:.4f} -> {fit.log_loss_after:.4f}\n")
    out.write("domain prior: " + ", ".join(f"{name} {p:.3f}" for name, p in
                                            zip(clf.config.label_names, prior, strict=True)) + "\n")
    config_dir = Path(args.config).resolve().parent
    try:
        relative = Path(args.output).resolve().relative_to(config_dir)
    except ValueError:
        relative = Path(args.output).resolve()
    out.write(f"wrote {args.output}; use it with, in the config:\n  scoring:\n    calibration: fitted   # or domain\n"
              f"    calibration_file: {relative}\n")
    return 0


# --------------------------------------------------------------------------- formatting


def _pct(value: float) -> str:
    return "   -  " if math.isnan(value) else f"{100 * value:5.1f}%"


def format_report(report: Any) -> str:
    """The plain-text report of :class:`~lpclassify.evaluation.EvalReport`."""
    lines = [f"calibration {report.method}, normalize {report.normalize}"
             + (f" ({report.note})" if report.note else ""),
             f"accuracy {report.accuracy:.4f}   macro-F1 {report.macro_f1:.4f}   ECE {report.ece:.4f}   "
             f"Brier {report.brier:.4f}   log-loss {report.log_loss:.4f}", ""]
    width = max(12, *(len(name) + 2 for name in report.labels))
    lines.append(f"{'label':<{width}}{'precision':>10}{'recall':>9}{'F1':>9}{'support':>9}")
    for i, name in enumerate(report.labels):
        pl = report.per_label
        lines.append(f"{name:<{width}}{pl.precision[i]:>10.4f}{pl.recall[i]:>9.4f}{pl.f1[i]:>9.4f}"
                     f"{pl.support[i]:>9d}")
    lines += ["", "confusion matrix (rows: true label, columns: predicted)"]
    cell = max(8, *(len(name) + 1 for name in report.labels))
    lines.append(" " * width + "".join(f"{name:>{cell}}" for name in report.labels))
    for i, name in enumerate(report.labels):
        lines.append(f"{name:<{width}}" + "".join(f"{v:>{cell}d}" for v in report.confusion[i]))
    lines += ["", "abstaining when the top probability is under a threshold", "threshold  coverage  accuracy"]
    for s in report.selective:
        lines.append(f"{s.threshold:>9.2f}  {_pct(s.coverage):>8}  {_pct(s.accuracy):>8}")
    return "\n".join(lines) + "\n"


def format_compare(rows: Sequence[Any]) -> str:
    """The comparison as a Markdown table, best accuracy in bold."""
    best = max(f"{row.accuracy:.3f}" for row in rows)
    lines = ["| calibration | normalize | n | accuracy | macro-F1 | ECE | Brier | log-loss |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        acc = f"{row.accuracy:.3f}"
        lines.append(f"| {row.method} | {row.normalize} | {row.n} | {f'**{acc}**' if acc == best else acc} "
                     f"| {row.macro_f1:.3f} | {row.ece:.3f} | {row.brier:.3f} | {row.log_loss:.3f} |")
    notes = dict.fromkeys(f"- {row.method}: {row.note}" for row in rows if row.note)
    return "\n".join(lines) + ("\n\n" + "\n".join(notes) if notes else "") + "\n"


def _clean(value: Any) -> Any:
    """JSON has no NaN: write null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (the package's ``lpclassify`` command includes these subcommands)."""
    parser = argparse.ArgumentParser(prog="lpclassify")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except LpclassifyError as exc:
        print(f"lpclassify: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
