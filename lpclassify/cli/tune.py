"""``lpclassify tune``: choose prompt, verbalizers, normalization and calibration from labelled examples.

    lpclassify tune -c questions.yaml -i dev.jsonl --label-field label -o questions.tuned.yaml --report tune.json

The search is :mod:`lpclassify.tuning`'s; this module reads the examples, shows progress, writes
the commented config (atomically: an interrupted run leaves no file) and the report.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..records.files import atomic_output
from ..records.writers import json_safe
from ..runs import model_path
from ..tuning.run import DEFAULT_BUDGET, DEFAULT_SHOTS, MAX_SHOTS
from .common import EXIT_OK, Context, Subparsers, add_labelled_options, is_terminal, load_labelled, positive_int

if TYPE_CHECKING:
    from ..tuning import TuneResult


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "tune", help="choose prompt, verbalizers, normalization and calibration from labelled examples",
        description="Search the config's prompt and those under search.prompts, surface variants of each "
                    "label's completions (case, leading space, its name, words of its description, "
                    "search.completions), normalize x aggregate x calibration (every method that needs no "
                    "labels: none, contextual, domain on the examples' words, batch, pmi, any registered) with "
                    "and without a per-label bias and temperature fitted on the examples. Every candidate of one "
                    "prompt is scored in one model pass. The choice is made by k-fold cross-validation and "
                    "the accuracy reported is a nested cross-validation estimate (the whole search re-run "
                    "without each fold, its winner scored on that fold). Writes the chosen config, commented.",
        epilog="example:\n  lpclassify tune -c questions.yaml -i dev.jsonl -o questions.tuned.yaml --report tune.json")
    add_labelled_options(p)
    p.add_argument("-o", "--output", required=True, metavar="BEST.yaml", help="the chosen config to write")
    p.add_argument("--report", metavar="R.json", help="also write what was searched, chosen and estimated as JSON")
    p.add_argument("--folds", type=positive_int, default=5, metavar="K", help="cross-validation folds (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed for the fold assignment and the demonstrations "
                   "(default 0)")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET, metavar="SECONDS",
                   help=f"time for the search (default {DEFAULT_BUDGET:.0f}); prompt variants that would not fit are "
                        "skipped, and the summary says which; 0: no limit")
    p.add_argument("--max-shots", type=int, default=max(DEFAULT_SHOTS), metavar="K",
                   help=f"most demonstrations per label to try (0 to {MAX_SHOTS}; default {max(DEFAULT_SHOTS)}); "
                        "0: none")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..labels import label_indices
    from ..tuning import tune

    out = sys.stdout
    if Path(args.output).suffix.lower() not in (".yaml", ".yml"):
        raise InputError(f"-o {args.output}: the chosen config is YAML; name it with .yaml or .yml")
    data = load_labelled(args, ctx)  # the base config as it is: its calibration is the baseline and the first tried
    clf = data.clf
    y = label_indices(data.labels, clf.config.label_names, data.label_order)
    config = clf.config
    if getattr(args, "model", None):  # the choice is the model's: record the one it was made with
        from dataclasses import replace

        config = replace(config, model=args.model)
    if not 0 <= args.max_shots <= MAX_SHOTS:
        raise InputError(f"--max-shots must be between 0 and {MAX_SHOTS}, got {args.max_shots}")
    if args.budget < 0:
        raise InputError(f"--budget must be a number of seconds >= 0 (0: no limit), got {args.budget:g}")
    result = tune(config, clf.backend, data.texts, y, folds=args.folds, seed=args.seed,
                  progress=_progress(sys.stderr), shots=tuple(range(args.max_shots + 1)),
                  budget=args.budget or None)
    header = describe(result, base=args.config, source=args.input, model=model_path(clf))
    try:  # the base config's comments are kept where they still apply
        base_text: str | None = Path(args.config).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        base_text = None
    written = result.write(args.output, header, comments_from=base_text)
    if args.report:
        document = {"config": str(args.config), "input": str(args.input), "model": str(model_path(clf)),
                    "output": str(args.output), **result.as_dict()}
        with atomic_output(args.report) as stream:
            stream.write(json.dumps(json_safe(document), indent=1) + "\n")
    out.write(summary(result))
    out.write(f"wrote {', '.join(map(str, written))}" + (f" and {args.report}" if args.report else "") + "\n")
    return EXIT_OK


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def describe(result: TuneResult, *, base: str, source: str, model: Any) -> str:
    """The comment on top of the written config: where it came from, what was chosen, the estimate."""
    s = result.setting
    today = datetime.date.today().isoformat()
    lines = [
        f"Written by `lpclassify tune` on {today} from {base}, model {Path(str(model)).name if model else '?'}.",
        f"Chosen among {result.n_settings} settings ({len(result.variants) or 1} prompt variant(s): direction x "
        "prompt x demonstrations per label; x verbalizer sets x normalize x aggregate x calibration x fitted",
        f"bias/temperature, then per-label verbalizer refinement) by {result.folds}-fold cross-validation on "
        f"{result.n_examples} labelled examples from {source}",
        f"(and {result.n_demo_pool} more set aside as demonstrations, never scored)." if result.n_demo_pool else ".",
        "",
        f"Estimated accuracy: {_pct(result.estimate.accuracy)} (nested {result.folds}-fold cross-validation: the whole "
        "search re-run without each fold,",
        f"its winner scored on that fold). The chosen setting's own cross-validated accuracy, "
        f"{_pct(result.selection.accuracy)}, is optimistic (a maximum).",
    ]
    if result.baseline is not None:
        lines += [f"The base config as it was: {_pct(result.baseline.accuracy)} on the same examples;",
                  _kept(result) + "."]
    lines += ["", f"Chosen: {chosen(result)}" + (",", ".")[not s.fit]]
    if s.fit:
        lines += [f"per-label bias and temperature fitted on all {result.n_examples} examples "
                  "(labels.*.bias: nats added to a label's log-probability;",
                  "scoring.temperature: calibrated log-probabilities are divided by it; both may be edited by hand)."]
    return "\n".join(lines)


def _kept(result: TuneResult) -> str:
    if result.base is not None and result.setting == result.base:
        return "no setting beat it by more than one standard error of the paired difference, so it was kept"
    return "the chosen setting beat it by more than one standard error of the paired difference"


def chosen(result: TuneResult) -> str:
    """The chosen setting in words, the same in the written config and on the terminal (prompts from 1)."""
    s, v = result.setting, result.variant
    # result.prompts holds one prompt per variant; the config's own prompts are what the variants number
    n_prompts = len({variant.prompt for variant in result.variants}) if result.variants else len(result.prompts)
    shots = (f"{v.shots} demonstration(s) per label (under examples:, round-robin by label)" if v.shots
             else "no demonstrations")
    rerank = (f", then its top {s.rerank.top} labels reranked by P(input | label) (scoring.rerank, weight "
              f"{s.rerank.weight:g})") if s.rerank else ""
    return (f"prompt {v.prompt + 1} of {n_prompts}, {v.direction} scoring, {shots}, verbalizer "
            f"'{s.verbalizer}', normalize {s.normalize}, aggregate {s.aggregate}, calibration {s.calibration}"
            f"{rerank}")


def summary(result: TuneResult) -> str:
    s = result.setting
    lines = [f"searched {result.n_settings} settings x {result.folds + 1} selections on {result.n_examples} examples "
             f"in {result.seconds:.1f} s",
             f"estimated accuracy {_pct(result.estimate.accuracy)} (nested {result.folds}-fold cross-validation; "
             f"the chosen setting's own CV accuracy {_pct(result.selection.accuracy)} is optimistic)"]
    if result.baseline is not None:
        lines.append(f"base config as it was: {_pct(result.baseline.accuracy)} on the same examples; {_kept(result)}")
    lines.append(f"chosen: {chosen(result)}" + (" + fitted bias/temperature" if s.fit else ""))
    for skipped in result.skipped:
        lines.append(f"  skipped {skipped}")
    if s.fit:
        names = [label.name for label in result.config.labels]
        lines.append(f"  temperature {result.temperature:.3f}, bias "
                     + ", ".join(f"{n} {b:+.3f}" for n, b in zip(names, result.bias, strict=True)))
    return "\n".join(lines) + "\n"


def _progress(stream: Any) -> Any:
    """A progress bar per phase (scoring each prompt, then the search) on ``stream``, when it is a terminal."""
    if not is_terminal(stream):
        return None
    from ..runs import progress_bar

    bars: dict[str, Any] = {}

    def report(phase: str, done: int, total: int) -> None:
        if phase not in bars:
            for other in bars.values():
                other.close()
            unit = "setting" if phase == "search" else "text"
            bars[phase] = progress_bar(stream, total=total, desc="searched" if phase == "search" else f"scored {phase}",
                                       unit=unit)
        bar = bars[phase]
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return report
