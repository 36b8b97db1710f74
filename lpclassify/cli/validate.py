"""``lpclassify validate``: check configs and, with a model, how each completion tokenizes after the prompt.

Without a model only the configs are checked. With one, every completion is shown as the
model tokenizes it after the rendered prompt, with warnings for what a model cannot tell
apart (completions of different labels that start with the same token) or what scores
badly (long completions, a first token that straddles the end of the prompt).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import load_config
from ..errors import InputError, LpclassifyError, error_lines
from ..slots import Slot, make_slots
from .common import EXIT_OK, EXIT_USER, PROG, Context, ModelRequest, Subparsers, load_classifier, positive_int

if TYPE_CHECKING:
    from ..classifier import Classifier
    from ..config import Config

SAMPLE_TEXT = "The package arrived on time and works as described."

EPILOG = """\
Without --model/--tokens only the configs are checked (no model is loaded). With them,
each config's prompt is rendered on a sample text and every completion is shown as the
model tokenizes it after the prompt, with warnings for completions longer than 3 tokens
and for completions of different labels that start with the same token.

examples:
  lpclassify validate configs/*.yaml
  lpclassify validate configs/sentiment.yaml --tokens
  lpclassify validate sentiment spam --model smollm2-135m
  lpclassify validate my.yaml --tokens --text "a typical input" """


def register(sub: Subparsers) -> None:
    p = sub.add_parser("validate", help="check configs (and, with --tokens, how completions tokenize)",
                       description="Check label-set configs.", epilog=EPILOG)
    p.add_argument("configs", nargs="*", metavar="CONFIG", help="config files or names of shipped configs")
    p.add_argument("-m", "--model", nargs="?", const="", default=None, metavar="NAME",
                   help="also load a model (NAME, or the config's when left out) and show the tokenization")
    p.add_argument("--tokens", action="store_true", help="same as --model without NAME")
    p.add_argument("--text", default=SAMPLE_TEXT, help="the sample text for the tokenization check")
    p.add_argument("--download", action="store_true", help="download a registry model that is not cached yet")
    p.add_argument("--threads", type=positive_int, metavar="N", help="CPU threads for llama.cpp")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    configs = list(args.configs)
    model = args.model
    # `validate --model my.yaml`: argparse gave the config to --model's optional value.
    if model and Path(model).suffix.lower() in (".yaml", ".yml"):
        configs.insert(0, model)
        model = ""
    if not configs:
        raise InputError("no config given (see `lpclassify validate --help`)")
    check_tokens = model is not None or args.tokens
    failed = 0
    for spec in configs:
        try:
            config = load_config(spec)
        except LpclassifyError as exc:
            for line in error_lines(exc):
                print(f"{PROG}: error: {line}", file=sys.stderr)
            failed += 1
            continue
        print(f"ok: {config.name} ({len(config.labels)} labels, {config.decision.mode})")
        if check_tokens:
            try:
                _show_tokens(config, model or config.model, args, ctx)
            except LpclassifyError as exc:
                for line in error_lines(exc):
                    print(f"{PROG}: error: {line}", file=sys.stderr)
                failed += 1
        sys.stdout.flush()
    return EXIT_USER if failed else EXIT_OK


def _token(backend: Any, token: int) -> str:
    return json.dumps(backend.token_text(token), ensure_ascii=False)


def _classifier(config: Config, path: str, args: argparse.Namespace, ctx: Context) -> Classifier:
    """The config's classifier on the model at ``path``: by default from the process's one cache of loaded models
    (:mod:`lpclassify.backends.shared`), so that every config using a model loads it once; a caller's own
    loader (``cli.main(..., load_classifier=...)``) decides for itself."""
    from ..backends.shared import runtime_backend
    from ..classifier import Classifier

    request = ModelRequest(model=path, verbose=args.verbose, threads=args.threads)
    if ctx.load_classifier is not load_classifier:
        return ctx.load_classifier(config, request)
    config = request.configured(config)
    return Classifier(config, runtime_backend(path, config.runtime, shared=True, verbose=args.verbose))


def _show_tokens(config: Config, model: str, args: argparse.Namespace, ctx: Context) -> None:
    from ..models import resolve_model

    path = str(resolve_model(model, download=args.download))
    clf = _classifier(config, path, args, ctx)
    backend = clf.backend
    fields = clf.scorer.prompter.fields
    encoded, truncated = clf.encode(clf.scorer.prompter.fill_all(args.text) if len(fields) > 1 else args.text)
    info = backend.describe()
    print(f"  model: {model} ({info.get('architecture', '?')}, {info.get('path', path)})")
    if config.chat or config.examples:
        print("  rendered prompt" + (" (the model's chat template)" if config.chat else "") + ":")
        for line in clf.scorer.prompter.frames[0].display().split("\n"):
            print(f"    | {line}")
    if specials := clf.scorer.template_specials():
        print(f"  special tokens (only from the template's own text): {' '.join(specials)}")
    if len(fields) > 1:
        print(f"  fields: {', '.join('{' + f + '}' for f in fields)} (each set to the sample text below)")
    tail = " ".join(_token(backend, t) for t in encoded.prompt[-4:])
    print(f"  sample text: {json.dumps(args.text, ensure_ascii=False)}{' (truncated)' if truncated else ''}")
    shared = "the prompt all labels share" if config.decision.score_mode == "multi" else "the prompt"
    print(f"  {shared} ends with the tokens: … {tail}")
    print("  each completion as scored tokens; [brackets]: tokens before it that are not scored, "
          "{braces}: a token that straddles the end of the prompt")
    slots = make_slots(config)
    label_width = max(len(slot.name) + (4 if slot.answer else 0) for slot in slots)
    completion_width = max(len(json.dumps(slot.completion, ensure_ascii=False)) for slot in slots)
    warnings: list[str] = []
    first_tokens: dict[int, list[Slot]] = collections.defaultdict(list)
    channel = config.scoring.channel  # every label scores the sample text itself: no completion warnings
    if channel:
        print("  channel scoring: each label's verbalization goes into the prompt, and the sample text's tokens "
              "are what is scored after it")
    for slot, candidate in zip(slots, encoded.candidates, strict=True):
        boundary = candidate.tokens[: len(candidate.tokens) - candidate.n_scored]
        own = candidate.tokens[len(candidate.tokens) - candidate.n_scored:]
        shown = f"{slot.name}/{slot.answer}" if slot.answer else slot.name
        quoted = json.dumps(slot.completion, ensure_ascii=False)
        marked = ""
        if boundary:  # tokens re-read at the prompt's end (or, in multi-label mode, the label's question)
            kind = "question" if slot.answer is not None else "prompt end"
            last = " ".join(_token(backend, t) for t in boundary[-3:])
            marked = f"[{kind}: {'… ' if len(boundary) > 3 else ''}{last}] "
        tokens = " ".join(_token(backend, t) for t in own)
        joined = "".join(backend.token_text(t) for t in own)
        completion = slot.completion
        spill = joined[: len(joined) - len(completion)] if joined != completion and joined.endswith(completion) else ""
        if own and spill.strip():  # the first scored token also covers the end of the prompt
            tokens = "{" + _token(backend, own[0]) + "}" + tokens[len(_token(backend, own[0])):]
            warnings.append(f"{shown}: the first token of {quoted}, {_token(backend, own[0])}, also covers the "
                            f"prompt's last characters {json.dumps(spill, ensure_ascii=False)}; end the prompt "
                            "on a word boundary (or start the completions with a space)")
        print(f"    {shown:<{label_width}}  {quoted:<{completion_width}}  {marked}{tokens}"
              f"  ({len(own)} token{'s' if len(own) != 1 else ''})")
        if len(own) > 3 and not channel:
            warnings.append(f"{shown}: completion {quoted} is {len(own)} tokens long; long completions collect "
                            "more negative log-prob (prefer a shorter word, or scoring.normalize: mean)")
        if own and not channel:
            first_tokens[own[0]].append(slot)
    for token, owners in first_tokens.items():
        # Different labels (single-label mode), or yes and no of the same label (multi-label mode).
        if config.decision.score_mode == "multi":
            for label in dict.fromkeys(slot.name for slot in owners):
                answers = {slot.answer for slot in owners if slot.name == label}
                if len(answers) > 1:
                    warnings.append(f"{label}: a yes and a no completion start with the same token "
                                    f"{_token(backend, token)}; the first token cannot tell them apart")
            continue
        if len({slot.name for slot in owners}) > 1:
            listed = ", ".join(f"{json.dumps(slot.completion, ensure_ascii=False)} ({slot.name})" for slot in owners)
            warnings.append(f"completions of different labels start with the same token {_token(backend, token)}: "
                            f"{listed}; the first token cannot tell them apart")
    for message in dict.fromkeys(warnings):
        print(f"  warning: {message}")
