"""``lpclassify eval``: measure a config on labelled examples (and, with --compare, every calibration).

    lpclassify eval -c configs/sentiment.yaml -i sst2.jsonl --label-field label_name --limit 1000 --compare

The metrics are :mod:`lpclassify.evaluation`'s; this module prints them and writes the report and plots.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..calibration import method_names
from ..config import NORMALIZATIONS
from ..errors import InputError, MissingDependencyError
from ..records.writers import json_safe
from ..runs import model_path
from .common import EXIT_OK, Context, Subparsers, add_labelled_options, load_labelled, scoring_progress


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "eval", help="measure a config on labelled JSONL: accuracy, F1, calibration, abstention",
        description="Classify a labelled JSON-lines file and print accuracy, macro-F1, per-label "
                    "precision/recall/F1, the confusion matrix, expected calibration error (15 bins), "
                    "Brier score and coverage/accuracy when abstaining. --compare adds every calibration "
                    "method x normalization, all from the same single model pass.")
    add_labelled_options(p)
    p.add_argument("--compare", action="store_true",
                   help="also compare every calibration method x normalization on the same scores")
    p.add_argument("--calibration", choices=method_names(), help="override scoring.calibration")
    p.add_argument("--normalize", choices=NORMALIZATIONS, help="override scoring.normalize")
    p.add_argument("--report", metavar="OUT.json", help="write every metric (and each prediction) as JSON")
    p.add_argument("--plot", metavar="DIR", help="write a reliability diagram and a confusion-matrix heat map "
                                                 "(PNG; needs the 'plot' extra: pip install 'lpclassify[plot]')")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Print the metrics (and the comparison table), write the report and plots."""
    from ..evaluation import compare, evaluate, score_texts
    from ..labels import label_indices
    from ..plots import write_plots

    out = sys.stdout
    if args.plot:  # fail before the long model pass, not after it
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise MissingDependencyError("--plot needs matplotlib: pip install 'lpclassify[plot]'") from None
    data = load_labelled(args, ctx)
    clf, texts, labels, order = data.clf, data.texts, data.labels, data.label_order
    label_indices(labels, clf.config.label_names, order)  # check labels before the model pass
    raw = score_texts(clf, texts, progress=scoring_progress(sys.stderr))
    report = evaluate(clf, texts, labels, raw=raw, method=args.calibration, normalize=args.normalize,
                      label_order=order)
    model = model_path(clf)
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
            Path(args.report).write_text(json.dumps(json_safe(document), indent=1) + "\n", encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write the report {args.report}: {exc.strerror}") from None
        out.write(f"\nreport written to {args.report}\n")
    if args.plot:
        paths = write_plots(report, args.plot, stem=clf.config.name)
        out.write("plots written: " + ", ".join(str(p) for p in paths) + "\n")
    return EXIT_OK


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
