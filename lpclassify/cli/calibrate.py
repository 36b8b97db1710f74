"""``lpclassify calibrate``: fit a calibration file (bias + temperature, domain prior) from labelled examples.

    lpclassify calibrate -c configs/sentiment.yaml -i dev.jsonl -o sentiment.calibration.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InputError
from .common import EXIT_OK, Context, Subparsers, add_labelled_options, load_labelled, scoring_progress


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "calibrate", help="fit a calibration file (bias + temperature, domain prior) from labelled JSONL",
        description="Fit per-label biases and a temperature on labelled examples (minimum log-loss) and a "
                    "domain-context prior from the same texts; write them as JSON for "
                    "scoring.calibration_file (a path relative to the config file).")
    add_labelled_options(p)
    p.add_argument("-o", "--output", required=True, metavar="CALIBRATION.json", help="file to write")
    p.add_argument("--domain-samples", type=int, default=20, metavar="N",
                   help="random-word inputs for the domain prior (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed for the domain inputs (default 0)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Fit bias/temperature and a domain prior; write the calibration file and say how to use it."""
    from ..evaluation import score_texts, to_indices

    out = sys.stdout
    if args.domain_samples < 1:
        raise InputError("--domain-samples must be at least 1")
    data = load_labelled(args, ctx, calibrating=True)
    clf, texts = data.clf, data.texts
    y = to_indices(data.labels, clf.config.label_names, data.label_order)
    if len(set(y.tolist())) < 2:
        raise InputError("the labelled examples must cover at least two labels to fit a calibration")
    raw = score_texts(clf, texts, progress=scoring_progress(sys.stderr))
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
    return EXIT_OK
