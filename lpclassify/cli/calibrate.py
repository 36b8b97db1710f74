"""``lpclassify calibrate``: fit a calibration file (bias + temperature, domain prior) from labelled examples.

    lpclassify calibrate -c configs/sentiment.yaml -i dev.jsonl -o sentiment.calibration.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from .common import EXIT_OK, Context, Subparsers, add_labelled_options, load_labelled, scoring_progress

if TYPE_CHECKING:
    from ..calibration import FittedCalibration
    from ..classifier import Classifier
    from ..config import Config


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "calibrate", help="fit a calibration file (bias + temperature, domain prior) from labelled JSONL",
        description="Fit per-label biases and a temperature on labelled examples (minimum log-loss) and a "
                    "domain-context prior from the same texts; write them as JSON for "
                    "scoring.calibration_file (a path relative to the config file).")
    add_labelled_options(p)
    p.add_argument("-o", "--output", metavar="CALIBRATION.json", help="calibration file to write")
    p.add_argument("--write-config", metavar="CONFIG.yaml",
                   help="also (or instead) write the config with the fitted per-label bias and temperature in it "
                        "(labels.*.bias, scoring.temperature; calibration none): no calibration file needed")
    p.add_argument("--domain-samples", type=int, default=20, metavar="N",
                   help="random-word inputs for the domain prior (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed for the domain inputs (default 0)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Fit bias/temperature and a domain prior; write the calibration file and say how to use it."""
    from ..evaluation import score_texts
    from ..labels import label_indices

    out = sys.stdout
    if args.domain_samples < 1:
        raise InputError("--domain-samples must be at least 1")
    if not args.output and not args.write_config:
        raise InputError("say what to write: -o CALIBRATION.json and/or --write-config CONFIG.yaml")
    if args.write_config and Path(args.write_config).suffix.lower() not in (".yaml", ".yml"):
        raise InputError(f"--write-config {args.write_config}: a config is YAML; name it with .yaml or .yml")
    data = load_labelled(args, ctx, calibrating=True)
    clf, texts = data.clf, data.texts
    if clf.config.decision.mode == "multi":
        return fit_multi_thresholds(args, clf, texts, data.labels)
    y = label_indices(data.labels, clf.config.label_names, data.label_order)
    if len(set(y.tolist())) < 2:
        raise InputError("the labelled examples must cover at least two labels to fit a calibration")
    raw = score_texts(clf, texts, progress=scoring_progress(sys.stderr))
    clf.fit_scores(raw, y)
    fit = clf.fitted_
    assert fit is not None
    if args.write_config:
        write_config(args.write_config, clf.config, fit, source=args.input)
    if not args.output:
        out.write(f"fitted on {fit.n_examples} examples: temperature {fit.temperature:.3f}; "
                  f"wrote {args.write_config}\n")
        return EXIT_OK
    # Channel scoring has no domain prior (config/direction.py says why): its file holds the fit only.
    domain = not clf.config.scoring.channel
    if domain:
        clf.fit_domain(texts, n_samples=args.domain_samples, seed=args.seed)
    try:
        clf.save_calibration(args.output)
    except OSError as exc:
        raise InputError(f"cannot write {args.output}: {exc.strerror}") from None
    out.write(f"fitted on {fit.n_examples} examples: temperature {fit.temperature:.3f}, bias "
              + ", ".join(f"{name} {b:+.3f}" for name, b in zip(clf.config.label_names, fit.bias, strict=True))
              + f"\nlog-loss on these examples: {fit.log_loss_before:.4f} -> {fit.log_loss_after:.4f}\n")
    if domain:
        out.write("domain prior: " + ", ".join(f"{name} {p:.3f}" for name, p in
                                                zip(clf.config.label_names, clf.domain_prior(), strict=True)) + "\n")
    config_dir = Path(args.config).resolve().parent
    try:
        relative = Path(args.output).resolve().relative_to(config_dir)
    except ValueError:
        relative = Path(args.output).resolve()
    if args.write_config:
        out.write(f"wrote {args.write_config} (the config with this bias and temperature in it)\n")
    out.write(f"wrote {args.output}; use it with, in the config:\n  scoring:\n    calibration: fitted"
              f"{'   # or domain' if domain else ''}\n    calibration_file: {relative}\n")
    return EXIT_OK


def write_config(path: str, config: Config, fit: FittedCalibration, *, source: str) -> None:
    """The config with the fit as per-label bias and temperature (and calibration none), written atomically."""
    from dataclasses import replace

    from ..config.dump import config_yaml
    from ..records.files import atomic_output

    labels = tuple(replace(label, bias=float(b)) for label, b in zip(config.labels, fit.bias, strict=True))
    scoring = replace(config.scoring, calibration="none", calibration_file=None, temperature=fit.temperature)
    header = (f"Written by `lpclassify calibrate` from {config.source}: per-label bias and temperature fitted on "
              f"{fit.n_examples} labelled examples from {source}\n(log-loss {fit.log_loss_before:.4f} -> "
              f"{fit.log_loss_after:.4f} on them). labels.*.bias: nats added to a label's log-probability; "
              "scoring.temperature:\nlog-probabilities are divided by it. Both may be edited by hand.")
    with atomic_output(path) as stream:
        stream.write(config_yaml(replace(config, labels=labels, scoring=scoring), header))


def fit_multi_thresholds(args: argparse.Namespace, clf: Classifier, texts: list[str], labels: list[Any]) -> int:
    """Multi-label configs: per-label thresholds fitted for F1 on the examples, written into the config."""
    from dataclasses import replace

    from ..calibration.thresholds import fit_thresholds, label_sets
    from ..config.dump import config_yaml
    from ..decision import thresholds
    from ..evaluation import score_texts
    from ..records.files import atomic_output

    if args.output or not args.write_config:
        raise InputError("a multi-label config is calibrated by per-label thresholds, written into the config: "
                         "use --write-config CONFIG.yaml (not -o)")
    config = clf.config
    try:
        truth = label_sets(labels, config.label_names)
    except ValueError as exc:
        raise InputError(f"{args.input}: {exc}") from None
    raw = score_texts(clf, texts, progress=scoring_progress(sys.stderr))
    fitted = fit_thresholds(clf.probabilities(raw), truth, list(thresholds(config).values()))
    new = replace(config, labels=tuple(replace(label, threshold=round(t, 6))
                                       for label, t in zip(config.labels, fitted, strict=True)))
    header = (f"Written by `lpclassify calibrate` from {config.source}: per-label thresholds (labels.*.threshold) "
              f"chosen for the best F1\nof each label on {len(texts)} labelled examples from {args.input}.")
    with atomic_output(args.write_config) as stream:
        stream.write(config_yaml(new, header))
    out = sys.stdout
    for label, t, positives in zip(config.label_names, fitted, truth.sum(axis=0), strict=True):
        out.write(f"  {label}: threshold {t:.3f} ({int(positives)} positive examples)\n")
    out.write(f"wrote {args.write_config}\n")
    return EXIT_OK
