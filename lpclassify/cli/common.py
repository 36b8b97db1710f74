"""What every command shares: the parser classes, common options, loading a classifier, output helpers.

This module imports no command module (the commands import it), so nothing here can form
an import cycle. A command module has ``register(subparsers)``, which adds its parser and
sets ``handler``: a function ``(args, ctx) -> int`` that returns the exit status and raises
:class:`~lpclassify.errors.LpclassifyError` for anything the user can fix.

How a command gets its classifier: ``ctx.load(config, args)`` turns the ``--model``,
``--download``, ``--threads``, ``--batch-size`` and ``--verbose`` options into a
:class:`ModelRequest` and hands it, with the config, to ``ctx.load_classifier`` -- a
:data:`Loader`. The default, :func:`load_classifier`, loads the model from disk;
``lpclassify.cli.main(argv, load_classifier=...)`` takes another, e.g. one that reuses
models already loaded (the test suite's) or a fake.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # for type hints only: the commands import what they run lazily
    from tqdm import tqdm

    from ..classifier import Classifier
    from ..config import Config
    from ..inputs import Input

PROG = "lpclassify"
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USER = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
EXIT_TERMINATED = 143
DEBUG_ENV = "LPCLASSIFY_DEBUG"


# --------------------------------------------------------------------------- loading a classifier


@dataclass(frozen=True)
class ModelRequest:
    """The model a command asks for: the command line's model options, nothing parsed further."""

    model: str | None = None  # a registry name or a .gguf path; None: the config's own
    download: bool = False  # download a registry model that is not cached yet
    verbose: bool = False  # show llama.cpp's log
    threads: int | None = None  # overrides runtime.threads
    batch_size: int | None = None  # overrides runtime.batch_size

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ModelRequest:
        """The request the options in ``args`` make (a command without an option leaves its default)."""
        return cls(model=getattr(args, "model", None) or None, download=bool(getattr(args, "download", False)),
                   verbose=bool(getattr(args, "verbose", False)), threads=getattr(args, "threads", None),
                   batch_size=getattr(args, "batch_size", None))

    def configured(self, config: Config) -> Config:
        """``config`` with the request's runtime overrides (``--threads``, ``--batch-size``) applied."""
        overrides = {key: value for key in ("batch_size", "threads") if (value := getattr(self, key)) is not None}
        return replace(config, runtime=replace(config.runtime, **overrides)) if overrides else config


Loader = Callable[["Config", ModelRequest], "Classifier"]
"""``(config, request) -> Classifier``: how the commands get a classifier for a config."""


def load_classifier(config: Config, request: ModelRequest) -> Classifier:
    """The default :data:`Loader`: the requested model (or the config's), loaded from disk."""
    from ..classifier import Classifier

    return Classifier.from_config(request.configured(config), request.model, download=request.download,
                                  verbose=request.verbose)


@dataclass(frozen=True)
class Context:
    """What :func:`lpclassify.cli.main` hands every command besides its arguments."""

    load_classifier: Loader = load_classifier

    def load(self, config: Config, args: argparse.Namespace) -> Classifier:
        """The classifier for ``config`` with the command line's model and runtime options."""
        return self.load_classifier(config, ModelRequest.from_args(args))


# --------------------------------------------------------------------------- parsers


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (and exit status 2)."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        self.exit(EXIT_USER, f"{PROG}: error: {message} (see `{self.prog} --help`)\n")


def add_common_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """--verbose and --debug, accepted before and after the command name."""
    default: Any = argparse.SUPPRESS if suppress else False
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="show llama.cpp's log and lpclassify's progress messages on stderr")
    parser.add_argument("--debug", action="store_true", default=default,
                        help=f"show the traceback of internal errors (also {DEBUG_ENV}=1)")


class SubParser(Parser):
    """Every subcommand: examples kept as written, plus the common options."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        kwargs.setdefault("conflict_handler", "resolve")
        super().__init__(**kwargs)
        add_common_options(self, suppress=True)


Subparsers = Any  # argparse's _SubParsersAction, which argparse does not export


def config_help() -> str:
    """The help of ``-c``: every config shipped with lpclassify, listed from where they are."""
    from ..config import shipped_configs

    names = ", ".join(shipped_configs()) or "none found"
    return f"a config file, or the name of a shipped config ({names})"


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--model, --download, --threads, --batch-size."""
    group = parser.add_argument_group("model options")
    group.add_argument("-m", "--model", metavar="MODEL",
                       help="use MODEL instead of the config's: a registry name (`lpclassify models list`) "
                            "or a .gguf path")
    group.add_argument("--download", action="store_true",
                       help="download a registry model that is not in the cache yet")
    group.add_argument("--threads", type=positive_int, metavar="N", help="CPU threads for llama.cpp")
    group.add_argument("--batch-size", type=positive_int, metavar="N",
                       help="texts per model call (overrides runtime.batch_size)")


# --------------------------------------------------------------------------- output


def warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def log_info(message: str) -> None:
    """A progress message, shown with --verbose."""
    logging.getLogger("lpclassify").info(message)


def table(out: TextIO, header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> None:
    """Aligned columns, two spaces apart; the columns in ``right`` right-aligned."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def fmt(row: Sequence[str]) -> str:
        cells = [str(cell).rjust(w) if i in right else str(cell).ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        return "  " + "  ".join(cells).rstrip() + "\n"

    out.write(fmt(header))
    for row in rows:
        out.write(fmt(row))


def is_terminal(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def terminal_width() -> int:
    return shutil.get_terminal_size((100, 24)).columns


# --------------------------------------------------------------------------- labelled data (eval, calibrate)


def add_labelled_options(parser: argparse.ArgumentParser) -> None:
    """-c, -i and the field options of the commands that read labelled examples."""
    parser.add_argument("-c", "--config", required=True, metavar="CONFIG",
                        help=config_help())
    parser.add_argument("-i", "--input", required=True, metavar="LABELED.jsonl",
                        help="labelled records with a text field and a label field: .jsonl, .csv or .tsv, "
                             "optionally .gz")
    parser.add_argument("--text-field", default="text", help="field holding the text (default: text)")
    parser.add_argument("--label-field", default="label",
                        help="field holding the true label: a label name, or an integer index in the config's "
                             "label order (or --label-order's) (default: label)")
    parser.add_argument("--label-order", metavar="NAME,NAME,...",
                        help="what integer labels mean, e.g. negative,positive for SST-2's 0/1")
    parser.add_argument("--limit", type=int, metavar="N", help="use only the first N records")
    add_model_options(parser)  # --model, --download, --threads, --batch-size


@dataclass(frozen=True)
class Labelled:
    """A classifier and the labelled examples to measure or fit it on."""

    clf: Classifier
    texts: list[Input]
    labels: list[str | int | list[str]]
    label_order: list[str] | None  # what integer labels mean (--label-order)


def load_labelled(args: argparse.Namespace, ctx: Context, *, calibrating: bool = False) -> Labelled:
    """Read ``args.input`` (before the model loads: a bad file fails fast), then load the classifier."""
    from ..config import load_config, resolve_config
    from ..errors import InputError
    from ..records.labelled import read_labeled

    if args.limit is not None and args.limit < 1:
        raise InputError("--limit must be at least 1")
    args.config = str(resolve_config(args.config))  # calibrate writes a path relative to the config's directory
    config = load_config(args.config)
    # Bias and temperature are fitted on uncalibrated scores (and the file about to be written may be the
    # one the config points to); multi-label thresholds on the probabilities the config will give.
    if calibrating and config.decision.mode != "multi":
        config = replace(config, scoring=replace(config.scoring, calibration="none", calibration_file=None))
    order = [name.strip() for name in args.label_order.split(",")] if args.label_order else None
    texts, labels = read_labeled(args.input, text_field=args.text_field, label_field=args.label_field,
                                 limit=args.limit, fields=config.fields, label_names=config.label_names,
                                 label_order=order)
    return Labelled(ctx.load(config, args), texts, labels, order)


def scoring_progress(stream: TextIO) -> Callable[[int, int], None] | None:
    """A progress bar for ``evaluation.score_texts(progress=...)`` on ``stream``, when it is a terminal."""
    if not is_terminal(stream):
        return None
    from ..runs import progress_bar

    bars: list[tqdm] = []  # made at the first report, when the total is known

    def report(done: int, total: int) -> None:
        if not bars:
            bars.append(progress_bar(stream, total=total, desc="scored", unit="text"))
        bars[0].update(done - bars[0].n)
        if done >= total:
            bars[0].close()

    return report
