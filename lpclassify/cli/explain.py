"""``lpclassify explain``: every number behind one decision, as a report or as JSON.

The numbers come from :meth:`lpclassify.classifier.Classifier.explain`; this module reads the
text and prints them.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from ..config import load_config
from ..errors import InputError
from .common import EXIT_OK, Context, Subparsers, add_model_options, config_help, is_terminal, positive_int, table

if TYPE_CHECKING:
    from ..config import Config
    from ..inputs import Input

TOP_LABELS = 10

EPILOG = """\
Shows the rendered prompt, the log-prob of every token of every completion, each
completion's summed and normalized score, the label probabilities before and after
calibration, and the decision with its reason. With many labels the tables show the
10 most likely (--top N, --all). Without TEXT the text is read from standard input.

examples:
  lpclassify explain -c sentiment "The plot was thin but the acting superb"
  lpclassify explain -c configs/support_tags.yaml "I was charged twice" --json
  lpclassify explain -c support_intents "Where is my parcel?" --top 5
  lpclassify explain -c entailment -f premise="A dog runs." -f hypothesis="An animal moves."
"""


def register(sub: Subparsers) -> None:
    p = sub.add_parser("explain", help="show why a text gets its label: prompt, token log-probs, probabilities",
                       description="Explain one classification step by step.", epilog=EPILOG)
    p.add_argument("text", nargs="?", metavar="TEXT", help="the text (default: read from stdin)")
    p.add_argument("-c", "--config", required=True, metavar="CONFIG", help=config_help())
    p.add_argument("-f", "--field", action="append", default=[], metavar="NAME=VALUE",
                   help="a field of the input, for prompts that use fields other than {text} (repeatable)")
    p.add_argument("--json", action="store_true", help="print one machine-readable JSON object (every label)")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--top", type=positive_int, default=TOP_LABELS, metavar="N",
                       help=f"with more labels than N, show the N most likely (default {TOP_LABELS})")
    shown.add_argument("--all", action="store_true", help="show every label, however many")
    add_model_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    config = load_config(args.config)
    text = args.text
    if args.field:
        return _explain(ctx, config, args, _fields(args.field, text))
    if text is None:
        if sys.stdin is None or is_terminal(sys.stdin):
            raise InputError("no text given; pass it as an argument (or pipe it to standard input)")
        text = sys.stdin.read()
        text = text[:-1] if text.endswith("\n") else text  # the newline that ends a piped line is not the text's
    if not text.strip():
        raise InputError("empty text: nothing to explain")
    return _explain(ctx, config, args, text)


def _fields(pairs: list[str], text: str | None) -> dict[str, str]:
    """``-f name=value`` options (and TEXT, as the field ``text``) as a record."""
    record = {"text": text} if text is not None else {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise InputError(f"--field {pair!r}: expected NAME=VALUE")
        record[name] = value
    return record


def _explain(ctx: Context, config: Config, args: argparse.Namespace, text: Input) -> int:
    clf = ctx.load(config, args)
    report = clf.explain(text).as_dict()
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print_explanation(report, top=None if args.all else args.top)
    return EXIT_OK


def shown_labels(report: dict[str, Any], top: int | None) -> list[str]:
    """The labels to show: all of them in config order, or with more than ``top``, the ``top`` most likely."""
    probabilities = report["probabilities"]
    if top is None or len(probabilities) <= top:
        return list(probabilities)
    return sorted(probabilities, key=lambda name: -probabilities[name])[:top]


def print_explanation(report: dict[str, Any], *, top: int | None = TOP_LABELS) -> None:
    """The report of ``Explanation.as_dict()`` for a reader, on stdout (``top``: see :func:`shown_labels`)."""
    out = sys.stdout
    names = shown_labels(report, top)
    hidden = len(report["probabilities"]) - len(names)
    cfg = report["config"]
    single = cfg["mode"] == "single" or cfg.get("multi_scoring") == "shared"  # the labels compete
    model = report["model"]
    out.write(f"config:  {cfg['name']} ({cfg['source']}), {cfg['mode']}-label\n")
    if model:
        out.write(f"model:   {model.get('path')} ({model.get('architecture')})\n")
    channel = cfg.get("direction") == "channel"
    out.write(f"scoring: direction={cfg.get('direction', 'direct')}  normalize={cfg['normalize']}  "
              f"aggregate={cfg['aggregate']}  calibration={cfg['calibration']}\n")
    if channel:
        out.write("note:    channel scoring: a label's score is log P(input | label), the input's tokens scored "
                  "after a prompt that names the label\n")
    if report["truncated"]:
        out.write("note:    the text was shortened to fit the context (runtime.n_ctx)\n")
    if report["chunks"] > 1:
        out.write(f"note:    the text was scored in {report['chunks']} windows that fit the context; each "
                  "log-prob below is the mean over the windows\n")
    if report.get("special_tokens"):
        out.write(f"special tokens (from the template's text only): {' '.join(report['special_tokens'])}\n")
    for i, prompt in enumerate(report["prompts"]):
        title = "prompt" if len(report["prompts"]) == 1 else f"prompt {i + 1} of {len(report['prompts'])}"
        out.write(f"\n{title}:\n")
        for line in prompt.split("\n"):
            out.write(f"  | {line}\n")

    if channel:
        out.write(f"\nthe input after each label's verbalization: log-prob of each of its tokens, sum, normalized "
                  f"({cfg['normalize']})\n")
    else:
        out.write(f"\ncompletions: log-prob of each token after the prompt, sum, normalized ({cfg['normalize']})\n")
    rows = []
    wanted = set(names)
    for c in (c for c in report["completions"] if c["label"] in wanted):
        label = c["label"] + (f"/{c['answer']}" if "answer" in c else "")
        tokens = "  ".join(f"{json.dumps(t['text'], ensure_ascii=False)} {_num(t['logprob'])}" for t in c["tokens"])
        rows.append((label, json.dumps(c["completion"], ensure_ascii=False), tokens, _num(c["logprob"]),
                     _num(c["normalized"])))
    table(out, ("label", "verbalization" if channel else "completion", "tokens", "sum", "normalized"), rows,
          right=(3, 4))

    out.write("\nlabels:\n" if not hidden else f"\nlabels: the {len(names)} most likely of "
              f"{len(names) + hidden} (--all shows every one)\n")
    if single:
        mixture = "log-mean-exp of its verbalizations" if cfg["aggregate"] == "logsumexp" else cfg["aggregate"]
        score = f"log P(input | label) ({mixture})" if channel else f"score ({cfg['aggregate']})"
        header: tuple[str, ...] = ("label", score, "p before calibration", "p after calibration")
        rerank = report.get("rerank")
        calibrated = {**report["probabilities"], **{name: v["p_direct"] for name, v in rerank["labels"].items()}} \
            if rerank else report["probabilities"]  # with a rerank, the table shows direct scoring's own
        rows = [(name, _num(report["label_scores"][name]), f"{report['probabilities_uncalibrated'][name]:.4f}",
                 f"{calibrated[name]:.4f}") for name in names]
        if report["prior"]:  # what the calibration divided out, beside each label (shown labels only)
            header = (*header, "prior")
            rows = [(*row, f"{report['prior'][row[0]]:.4f}") for row in rows]
        if cfg["thresholds"]:  # multi-label from one shared question: each label is chosen at its threshold
            header = (*header, "threshold")
            rows = [(*row, "never chosen" if row[0] == cfg.get("none") else f"{cfg['thresholds'][row[0]]:.3f}")
                    for row in rows]
        table(out, header, rows, right=tuple(range(1, len(header))))
        if report["prior"]:
            out.write("  prior: the label probabilities the calibration divided out (given content-free inputs, "
                      "in-domain random words, or the batch)\n")
        elif cfg["calibration"] == "none":
            out.write("  (calibration: none, so both columns agree)\n")
    else:
        header = ("label", "yes score", "no score", "p(yes)", "threshold")
        rows = [(name, _num(report["label_scores"][name]["yes"]), _num(report["label_scores"][name]["no"]),
                 f"{report['probabilities'][name]:.4f}", f"{cfg['thresholds'][name]:.3f}") for name in names]
        table(out, header, rows, right=(1, 2, 3, 4))

    if report.get("rerank"):
        _write_rerank(out, report["rerank"], report["probabilities"])
    prediction = report["prediction"]
    shown = prediction["label"] if prediction["label"] is not None else "(abstain)"
    if len(prediction["labels"]) > 1:
        shown = ", ".join(prediction["labels"])
    out.write(f"\ndecision: {shown}\n  why: {prediction['explanation']}\n")


def _write_rerank(out: TextIO, rerank: dict[str, Any], probabilities: dict[str, float]) -> None:
    """scoring.rerank: the top labels' channel scores and what the product of experts made of them."""
    out.write(f"\nrerank: the {len(rerank['labels'])} most likely labels scored again as log P(input | label), "
              "the input's tokens after this prompt with {label} named:\n")
    for line in rerank["prompt"].split("\n"):
        out.write(f"  | {line}\n")
    out.write(f"  they share their probability in proportion to p x P(input | label)^{rerank['weight']:g}\n")
    rows = [(name, f"{v['p_direct']:.4f}", _num(v["loglik"]), f"{probabilities[name]:.4f}")
            for name, v in sorted(rerank["labels"].items(), key=lambda item: -probabilities[item[0]])]
    table(out, ("label", "p direct", "log P(input | label)", "p after rerank"), rows, right=(1, 2, 3))


def _num(value: float | None) -> str:
    return "-inf" if value is None else f"{value:.3f}"
