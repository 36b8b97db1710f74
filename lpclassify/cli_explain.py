"""``lpclassify validate`` and ``lpclassify explain``: what a config does with a model's tokens.

``validate`` checks configs (and, with a model, how each completion tokenizes after the prompt
and which completions a model cannot tell apart); ``explain`` shows every number behind one
decision. The command-line plumbing (parsing, exit statuses, errors) stays in :mod:`lpclassify.cli`.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import io as lpio
from .cli import EXIT_OK, EXIT_USER, PROG, _one_line, _table, load_classifier, load_config_arg
from .errors import InputError, LpclassifyError

if TYPE_CHECKING:
    from .classifier import Classifier
    from .config import Config


# --------------------------------------------------------------------------- validate


def cmd_validate(args: argparse.Namespace) -> int:
    configs = list(args.configs)
    model = args.model
    # `validate --model my.yaml`: argparse gave the config to --model's optional value.
    if model and Path(model).suffix.lower() in (".yaml", ".yml"):
        configs.insert(0, model)
        model = ""
    if not configs:
        raise InputError("no config given (see `lpclassify validate --help`)")
    check_tokens = model is not None or args.tokens
    backends: dict[str, Any] = {}
    failed = 0
    for spec in configs:
        try:
            config = load_config_arg(spec)
        except LpclassifyError as exc:
            print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
            failed += 1
            continue
        print(f"ok: {config.name} ({len(config.labels)} labels, {config.decision.mode})")
        if check_tokens:
            try:
                _show_tokens(config, model or config.model, args, backends)
            except LpclassifyError as exc:
                print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
                failed += 1
        sys.stdout.flush()
    return EXIT_USER if failed else EXIT_OK


def _slots(config: Config) -> list[tuple[str, str, str | None]]:
    """(label, completion, answer) per scored candidate, in the classifier's order.

    ``answer`` is ``"yes"``/``"no"`` in multi-label mode and None in single-label mode.
    """
    if config.decision.mode == "single":
        return [(label.name, completion, None) for label in config.labels for completion in label.completions]
    multi = config.decision.multi
    return [(label.name, completion, answer) for label in config.labels
            for answer, completions in (("yes", multi.yes), ("no", multi.no)) for completion in completions]


def _token(backend: Any, token: int) -> str:
    return json.dumps(backend.token_text(token), ensure_ascii=False)


def _show_tokens(config: Config, model: str, args: argparse.Namespace, backends: dict[str, Any]) -> None:
    from .classifier import Classifier
    from .models import resolve_model

    path = str(resolve_model(model, download=args.download))
    if path in backends:
        clf = Classifier(config, backends[path])
    else:
        overrides = {"threads": args.threads} if args.threads else {}
        clf = Classifier.from_config(config, path, verbose=args.verbose, **overrides)
        backends[path] = clf.backend
    backend = clf.backend
    encoded, truncated = clf.encode(args.text)
    info = backend.describe() if hasattr(backend, "describe") else {"path": path}
    print(f"  model: {model} ({info.get('architecture', '?')}, {info.get('path', path)})")
    tail = " ".join(_token(backend, t) for t in encoded.prompt[-4:])
    print(f"  sample text: {json.dumps(args.text, ensure_ascii=False)}{' (truncated)' if truncated else ''}")
    shared = "the prompt all labels share" if config.decision.mode == "multi" else "the prompt"
    print(f"  {shared} ends with the tokens: … {tail}")
    print("  each completion as scored tokens; [brackets]: tokens before it that are not scored, "
          "{braces}: a token that straddles the end of the prompt")
    slots = _slots(config)
    label_width = max(len(name) + (4 if answer else 0) for name, _, answer in slots)
    completion_width = max(len(json.dumps(completion, ensure_ascii=False)) for _, completion, _ in slots)
    warnings: list[str] = []
    first_tokens: dict[int, list[tuple[str, str, str | None]]] = collections.defaultdict(list)
    for (name, completion, answer), candidate in zip(slots, encoded.candidates, strict=True):
        boundary = candidate.tokens[: len(candidate.tokens) - candidate.n_scored]
        own = candidate.tokens[len(candidate.tokens) - candidate.n_scored:]
        shown = f"{name}/{answer}" if answer else name
        quoted = json.dumps(completion, ensure_ascii=False)
        marked = ""
        if boundary:  # tokens re-read at the prompt's end (or, in multi-label mode, the label's question)
            kind = "question" if answer is not None else "prompt end"
            last = " ".join(_token(backend, t) for t in boundary[-3:])
            marked = f"[{kind}: {'… ' if len(boundary) > 3 else ''}{last}] "
        tokens = " ".join(_token(backend, t) for t in own)
        joined = "".join(backend.token_text(t) for t in own)
        spill = joined[: len(joined) - len(completion)] if joined != completion and joined.endswith(completion) else ""
        if own and spill.strip():  # the first scored token also covers the end of the prompt
            tokens = "{" + _token(backend, own[0]) + "}" + tokens[len(_token(backend, own[0])):]
            warnings.append(f"{shown}: the first token of {quoted}, {_token(backend, own[0])}, also covers the "
                            f"prompt's last characters {json.dumps(spill, ensure_ascii=False)}; end the prompt "
                            "on a word boundary (or start the completions with a space)")
        print(f"    {shown:<{label_width}}  {quoted:<{completion_width}}  {marked}{tokens}"
              f"  ({len(own)} token{'s' if len(own) != 1 else ''})")
        if len(own) > 3:
            warnings.append(f"{shown}: completion {quoted} is {len(own)} tokens long; long completions collect "
                            "more negative log-prob (prefer a shorter word, or scoring.normalize: mean)")
        if own:
            first_tokens[own[0]].append((name, completion, answer))
    for token, owners in first_tokens.items():
        # Different labels (single-label mode), or yes and no of the same label (multi-label mode).
        groups = {(name if answer is None else f"{name}/{answer}") for name, _, answer in owners}
        if config.decision.mode == "multi":
            for label in {name for name, _, _ in owners}:
                answers = {answer for name, _, answer in owners if name == label}
                if len(answers) > 1:
                    warnings.append(f"{label}: a yes and a no completion start with the same token "
                                    f"{_token(backend, token)}; the first token cannot tell them apart")
            continue
        if len(groups) > 1:
            listed = ", ".join(f"{json.dumps(c, ensure_ascii=False)} ({n})" for n, c, _ in owners)
            warnings.append(f"completions of different labels start with the same token {_token(backend, token)}: "
                            f"{listed}; the first token cannot tell them apart")
    for message in dict.fromkeys(warnings):
        print(f"  warning: {message}")


# --------------------------------------------------------------------------- explain


def cmd_explain(args: argparse.Namespace) -> int:
    config = load_config_arg(args.config)
    text = args.text
    if text is None:
        if sys.stdin is None or (hasattr(sys.stdin, "isatty") and sys.stdin.isatty()):
            raise InputError("no text given; pass it as an argument (or pipe it to standard input)")
        text = _strip_final_newline(sys.stdin.read())
    if not text.strip():
        raise InputError("empty text: nothing to explain")
    clf = load_classifier(config, args)
    report = explain(clf, text)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        _print_explanation(report)
    return EXIT_OK


def _strip_final_newline(text: str) -> str:
    return text[:-1] if text.endswith("\n") else text


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def explain(clf: Classifier, text: str) -> dict[str, Any]:
    """Everything that led to the decision for ``text``, as a JSON-ready dict."""
    from . import calibration

    config = clf.config
    backend = clf.backend
    single = config.decision.mode == "single"
    encoded, truncated = clf.encode(text)
    raw = clf.raw_scores([text])
    scoring = config.scoring
    normalized = calibration.normalize(raw.logprobs, raw.n_tokens, raw.n_chars, scoring.normalize)[0]
    before = clf.probabilities(raw, calibrate=False)[0]
    after = clf.probabilities(raw)[0]
    prediction = clf.decide(raw, after[None, :])[0]
    names = list(config.label_names)
    slots = _slots(config)

    completions = []
    for (name, completion, answer), candidate, score, norm in zip(slots, encoded.candidates, raw.scores[0],
                                                                  normalized, strict=True):
        own = candidate.tokens[len(candidate.tokens) - candidate.n_scored:]
        boundary = candidate.tokens[: len(candidate.tokens) - candidate.n_scored]
        entry: dict[str, Any] = {
            "label": name,
            "completion": completion,
            "tokens": [{"id": int(t), "text": backend.token_text(t), "logprob": _finite(lp)}
                       for t, lp in zip(own, score.token_logprobs, strict=True)],
            "boundary_tokens": [{"id": int(t), "text": backend.token_text(t)} for t in boundary[-3:]],
            "n_boundary_tokens": len(boundary),
            "logprob": _finite(score.logprob),
            "normalized": _finite(float(norm)),
        }
        if answer is not None:
            entry["answer"] = answer
        completions.append(entry)

    label_scores: dict[str, Any] = {}
    if single:
        owners = [names.index(name) for name, _, _ in slots]
        aggregated = calibration.aggregate(normalized[None, :], owners, len(names), scoring.aggregate)[0]
        label_scores = {name: _finite(float(v)) for name, v in zip(names, aggregated, strict=True)}
    else:
        yes = [names.index(n) if a == "yes" else -1 for n, _, a in slots]
        no = [names.index(n) if a == "no" else -1 for n, _, a in slots]
        yes_scores = calibration.aggregate(normalized[None, :], yes, len(names), scoring.aggregate)[0]
        no_scores = calibration.aggregate(normalized[None, :], no, len(names), scoring.aggregate)[0]
        label_scores = {name: {"yes": _finite(float(y)), "no": _finite(float(n))}
                        for name, y, n in zip(names, yes_scores, no_scores, strict=True)}
    prior = None
    if single and scoring.calibration == "contextual":
        prior = {name: float(p) for name, p in zip(names, clf.content_free_prior(), strict=True)}

    thresholds = {label.name: (label.threshold if label.threshold is not None else config.decision.threshold)
                  for label in config.labels}
    prompts = list(dict.fromkeys(prompt for prompt, _ in clf.prompts(text)))
    model_info = backend.describe() if hasattr(backend, "describe") else {}
    return {
        "text": text,
        "config": {"name": config.name, "source": config.source, "mode": config.decision.mode,
                   "normalize": scoring.normalize, "aggregate": scoring.aggregate,
                   "calibration": scoring.calibration, "threshold": config.decision.threshold,
                   "thresholds": thresholds if not single else None, "top_k": config.decision.top_k},
        "model": model_info,
        "prompts": prompts,
        "truncated": bool(truncated),
        "chunks": prediction.n_chunks,
        "completions": completions,
        "label_scores": label_scores,
        "prior": prior,
        "probabilities_uncalibrated": {name: float(p) for name, p in zip(names, before, strict=True)},
        "probabilities": {name: float(p) for name, p in zip(names, after, strict=True)},
        "prediction": {**lpio._finite(prediction.as_dict()), "explanation": _decision_reason(config, prediction,
                                                                                             thresholds)},
    }


def _decision_reason(config: Config, prediction: Any, thresholds: dict[str, float]) -> str:
    if prediction.abstained:
        return f"abstained: {prediction.reason}"
    probs = prediction.probabilities
    if config.decision.mode == "multi":
        chosen = ", ".join(f"{name} {probs[name]:.3f} >= {thresholds[name]:.3f}" for name in prediction.labels)
        return f"label(s) at or above their threshold: {chosen}"
    best = prediction.label
    reason = f"{best} has the highest probability, {probs[best]:.3f}"
    if config.decision.threshold > 0:
        reason += f" (at or above the threshold {config.decision.threshold:.3f})"
    if config.decision.top_k > 1:
        reason += f"; top {config.decision.top_k}: " + ", ".join(prediction.labels)
    return reason


def _print_explanation(report: dict[str, Any]) -> None:
    out = sys.stdout
    cfg = report["config"]
    single = cfg["mode"] == "single"
    model = report["model"]
    out.write(f"config:  {cfg['name']} ({cfg['source']}), {cfg['mode']}-label\n")
    if model:
        out.write(f"model:   {model.get('path')} ({model.get('architecture')})\n")
    out.write(f"scoring: normalize={cfg['normalize']}  aggregate={cfg['aggregate']}  "
              f"calibration={cfg['calibration']}\n")
    if report["truncated"]:
        out.write("note:    the text was shortened to fit the context (runtime.n_ctx)\n")
    if report["chunks"] > 1:
        out.write(f"note:    the text was scored in {report['chunks']} windows that fit the context; each "
                  "log-prob below is the mean over the windows\n")
    for i, prompt in enumerate(report["prompts"]):
        title = "prompt" if len(report["prompts"]) == 1 else f"prompt {i + 1} of {len(report['prompts'])}"
        out.write(f"\n{title}:\n")
        for line in prompt.split("\n"):
            out.write(f"  | {line}\n")

    out.write(f"\ncompletions: log-prob of each token after the prompt, sum, normalized ({cfg['normalize']})\n")
    rows = []
    for c in report["completions"]:
        label = c["label"] + (f"/{c['answer']}" if "answer" in c else "")
        tokens = "  ".join(f"{json.dumps(t['text'], ensure_ascii=False)} {_num(t['logprob'])}" for t in c["tokens"])
        rows.append((label, json.dumps(c["completion"], ensure_ascii=False), tokens, _num(c["logprob"]),
                     _num(c["normalized"])))
    _table(out, ("label", "completion", "tokens", "sum", "normalized"), rows, right=(3, 4))

    names = list(report["probabilities"])
    out.write("\nlabels:\n")
    if single:
        header = ("label", f"score ({cfg['aggregate']})", "p before calibration", "p after calibration")
        rows = [(name, _num(report["label_scores"][name]), f"{report['probabilities_uncalibrated'][name]:.4f}",
                 f"{report['probabilities'][name]:.4f}") for name in names]
        _table(out, header, rows, right=(1, 2, 3))
        if report["prior"]:
            prior = ", ".join(f"{name} {p:.3f}" for name, p in report["prior"].items())
            out.write(f"  content-free prior (divided out by calibration): {prior}\n")
        elif cfg["calibration"] == "none":
            out.write("  (calibration: none, so both columns agree)\n")
    else:
        header = ("label", "yes score", "no score", "p(yes)", "threshold")
        rows = [(name, _num(report["label_scores"][name]["yes"]), _num(report["label_scores"][name]["no"]),
                 f"{report['probabilities'][name]:.4f}", f"{cfg['thresholds'][name]:.3f}") for name in names]
        _table(out, header, rows, right=(1, 2, 3, 4))

    prediction = report["prediction"]
    shown = prediction["label"] if prediction["label"] is not None else "(abstain)"
    if len(prediction["labels"]) > 1:
        shown = ", ".join(prediction["labels"])
    out.write(f"\ndecision: {shown}\n  why: {prediction['explanation']}\n")


def _num(value: float | None) -> str:
    return "-inf" if value is None else f"{value:.3f}"
