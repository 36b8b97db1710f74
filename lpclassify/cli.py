"""The ``lpclassify`` command line: classify, validate, explain, models.

``validate`` and ``explain`` live in :mod:`lpclassify.cli_explain`, ``eval`` and ``calibrate`` in
:mod:`lpclassify.cli_eval`; parsing, exit statuses and error reporting for all of them are here.

This is the only module that prints or decides exit statuses. Exit statuses:

* 0 -- success;
* 1 -- an internal error (a bug): a short message, the traceback with ``--debug`` or ``LPCLASSIFY_DEBUG=1``;
* 2 -- a user error (any :class:`~lpclassify.errors.LpclassifyError`, bad arguments, an unreadable
  input file, a bad input record): one line ``lpclassify: error: ...`` on stderr, no traceback;
* 130 -- interrupted (Ctrl-C): what was written is flushed; ``classify -o`` keeps ``OUTPUT.partial``
  for ``--resume`` (see :mod:`lpclassify.runfiles`);
* 143 -- terminated (SIGTERM), with the same clean-up;
* 141 -- stdout was closed early (``lpclassify classify ... | head``), as if killed by SIGPIPE.

Other modules may add subcommands: if ``lpclassify/cli_eval.py`` exists and has
``register(subparsers)``, it is called with the subparsers action. A subcommand it adds
should call ``parser.set_defaults(handler=function)`` (or ``func=``), where ``function(args)`` returns the
exit status and raises :class:`~lpclassify.errors.LpclassifyError` for user errors; the
helpers :func:`resolve_config`, :func:`load_config_arg`, :func:`add_model_options`,
:func:`load_classifier` and :func:`open_records` are meant for it. Every subparser gets
``--verbose`` and ``--debug`` automatically.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import difflib
import json
import logging
import os
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from . import __version__, runfiles
from . import io as lpio
from .errors import ConfigError, InputError, LpclassifyError

if TYPE_CHECKING:  # imported lazily at run time: numpy and llama.cpp are slow to load for --help
    from .classifier import Classifier
    from .config import Config

PROG = "lpclassify"
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USER = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
EXIT_TERMINATED = 143
DEBUG_ENV = "LPCLASSIFY_DEBUG"
SAMPLE_TEXT = "The package arrived on time and works as described."
REPO_CONFIGS = Path(__file__).resolve().parent.parent / "configs"

# --------------------------------------------------------------------------- help texts

MAIN_DESCRIPTION = """\
Zero-shot text classification from language-model log-probabilities, on local GGUF
models through llama.cpp. A YAML config names the labels, their candidate completions
and the prompt; lpclassify scores every completion after the prompt and picks a label."""

MAIN_EPILOG = """\
examples:
  echo "I want a refund, the product broke" | lpclassify classify -c sentiment
  lpclassify classify -c configs/topic.yaml "Stocks rallied after the rate cut"
  lpclassify classify -c spam -i messages.csv -o labelled.csv
  lpclassify explain -c sentiment "Not bad at all"
  lpclassify validate configs/*.yaml --tokens
  lpclassify models list

Run `lpclassify COMMAND --help` for the options of each command."""

CLASSIFY_EPILOG = """\
input (one of):
  TEXT ...          texts as arguments
  -i FILE           .jsonl (one JSON object per line, the text in --text-field),
                    .csv/.tsv (a header row, the text in column --text-field),
                    .txt (one text per line); any of them may be gzipped (.gz)
  (nothing)         one text per line from standard input

output: every input record with its fields untouched, plus label, labels,
probabilities, abstained and reason (and truncated or chunks for long texts; an input
field with one of these names is kept as input_<name>). CSV output has one prob_<label>
column per label and labels joined with ';'. The default format is a table on a
terminal and JSON Lines otherwise; -o FILE picks csv or jsonl from its suffix.

-o FILE is written as FILE.partial, record by record, and renamed to FILE when the run
completes. After an interruption (Ctrl-C, a crash, a bad record) the same command with
--resume continues where it stopped. --errors skip sets bad records aside, with their
line number and reason, instead of stopping at the first one: in out.rejected.jsonl for
-o out.jsonl (without -o: next to the input, in.rejected.jsonl for -i in.csv).

examples:
  lpclassify classify -c sentiment "Loved it" "Never again"
  printf 'great\\nawful\\n' | lpclassify classify -c sentiment --model smollm2-135m
  lpclassify classify -c configs/spam.yaml -i inbox.jsonl --text-field body -o out.jsonl
  lpclassify classify -c configs/spam.yaml -i inbox.jsonl --text-field body -o out.jsonl --resume
  lpclassify classify -c topic -i news.csv -o topics.csv --errors skip --threads 4"""

VALIDATE_EPILOG = """\
Without --model/--tokens only the configs are checked (no model is loaded). With them,
each config's prompt is rendered on a sample text and every completion is shown as the
model tokenizes it after the prompt, with warnings for completions longer than 3 tokens
and for completions of different labels that start with the same token.

examples:
  lpclassify validate configs/*.yaml
  lpclassify validate configs/sentiment.yaml --tokens
  lpclassify validate sentiment spam --model smollm2-135m
  lpclassify validate my.yaml --tokens --text "a typical input" """

EXPLAIN_EPILOG = """\
Shows the rendered prompt, the log-prob of every token of every completion, each
completion's summed and normalized score, the label probabilities before and after
calibration, and the decision with its reason. Without TEXT the text is read from
standard input.

examples:
  lpclassify explain -c sentiment "The plot was thin but the acting superb"
  lpclassify explain -c configs/support_tags.yaml "I was charged twice" --json"""

MODELS_EPILOG = """\
examples:
  lpclassify models list
  lpclassify models pull smollm2-135m
  lpclassify models path default"""


# --------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (and exit status 2)."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        self.exit(EXIT_USER, f"{PROG}: error: {message} (see `{self.prog} --help`)\n")


def _add_common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """--verbose and --debug, accepted before and after the command name."""
    default: Any = argparse.SUPPRESS if suppress else False
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="show llama.cpp's log and lpclassify's progress messages on stderr")
    parser.add_argument("--debug", action="store_true", default=default,
                        help=f"show the traceback of internal errors (also {DEBUG_ENV}=1)")


class _SubParser(_Parser):
    """Every subcommand: examples kept as written, plus the common options."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        kwargs.setdefault("conflict_handler", "resolve")
        super().__init__(**kwargs)
        _add_common(self, suppress=True)


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def _version() -> str:
    try:
        from importlib.metadata import version

        engine = f" (llama-cpp-python {version('llama-cpp-python')})"
    except Exception:  # the version line must never fail
        engine = ""
    return f"{PROG} {__version__}{engine}"


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--model, --download, --threads, --batch-size."""
    group = parser.add_argument_group("model options")
    group.add_argument("-m", "--model", metavar="MODEL",
                       help="use MODEL instead of the config's: a registry name (`lpclassify models list`) "
                            "or a .gguf path")
    group.add_argument("--download", action="store_true",
                       help="download a registry model that is not in the cache yet")
    group.add_argument("--threads", type=_positive_int, metavar="N", help="CPU threads for llama.cpp")
    group.add_argument("--batch-size", type=_positive_int, metavar="N",
                       help="texts per model call (overrides runtime.batch_size)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=MAIN_DESCRIPTION, epilog=MAIN_EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=_version())
    _add_common(parser, suppress=False)
    sub = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", parser_class=_SubParser)
    _add_classify(sub)
    _add_validate(sub)
    _add_explain(sub)
    _add_models(sub)
    _register_plugins(sub)
    return parser


def _register_plugins(sub: Any) -> None:
    """Let lpclassify/cli_eval.py add its subcommands (eval, calibrate) when it exists."""
    try:
        from . import cli_eval  # type: ignore[attr-defined]
    except ModuleNotFoundError as exc:
        if exc.name == f"{__package__}.cli_eval":
            return
        raise
    register = getattr(cli_eval, "register", None)
    if callable(register):
        register(sub)


def _add_classify(sub: Any) -> None:
    p = sub.add_parser("classify", help="classify texts from arguments, standard input or a file",
                       description="Classify texts with a label-set config.", epilog=CLASSIFY_EPILOG)
    p.add_argument("texts", nargs="*", metavar="TEXT",
                   help="texts to classify; without any (and without -i), one text per line from standard input")
    p.add_argument("-c", "--config", required=True, metavar="CONFIG",
                   help="a config file, or the name of a shipped config (sentiment, spam, topic, support_tags)")
    group = p.add_argument_group("input and output")
    group.add_argument("-i", "--input", metavar="FILE",
                       help="read records from FILE (.jsonl, .csv, .tsv, .txt, optionally .gz); '-' is stdin")
    group.add_argument("--input-format", choices=lpio.INPUT_FORMATS,
                       help="the input format, when the file name does not tell (default for stdin: txt)")
    group.add_argument("--text-field", default="text", metavar="NAME",
                       help="the JSON key or CSV column that holds the text (default: text)")
    group.add_argument("-o", "--output", metavar="FILE",
                       help="write to FILE instead of stdout (as FILE.partial, renamed when complete)")
    group.add_argument("--resume", action="store_true",
                       help="continue the interrupted run that left FILE.partial (same input and config)")
    group.add_argument("--errors", choices=lpio.ERROR_POLICIES, default="fail",
                       help="a bad input record stops the run (fail, the default) or is set aside (skip)")
    group.add_argument("--rejected", metavar="FILE",
                       help="where --errors skip writes rejected records (default: beside the output, "
                            "out.rejected.jsonl for -o out.jsonl; else beside the input; else rejected.jsonl)")
    group.add_argument("-f", "--format", choices=lpio.OUTPUT_FORMATS,
                       help="output format (default: from the -o suffix, else table on a terminal, else jsonl)")
    group.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress bar on stderr for file input (default: when stderr is a terminal)")
    add_model_options(p)
    p.set_defaults(handler=cmd_classify)


def _add_validate(sub: Any) -> None:
    p = sub.add_parser("validate", help="check configs (and, with --tokens, how completions tokenize)",
                       description="Check label-set configs.", epilog=VALIDATE_EPILOG)
    p.add_argument("configs", nargs="*", metavar="CONFIG", help="config files or names of shipped configs")
    p.add_argument("-m", "--model", nargs="?", const="", default=None, metavar="NAME",
                   help="also load a model (NAME, or the config's when left out) and show the tokenization")
    p.add_argument("--tokens", action="store_true", help="same as --model without NAME")
    p.add_argument("--text", default=SAMPLE_TEXT, help="the sample text for the tokenization check")
    p.add_argument("--download", action="store_true", help="download a registry model that is not cached yet")
    p.add_argument("--threads", type=_positive_int, metavar="N", help="CPU threads for llama.cpp")
    from .cli_explain import cmd_validate  # its own module: imported when the parser is built

    p.set_defaults(handler=cmd_validate)


def _add_explain(sub: Any) -> None:
    p = sub.add_parser("explain", help="show why a text gets its label: prompt, token log-probs, probabilities",
                       description="Explain one classification step by step.", epilog=EXPLAIN_EPILOG)
    p.add_argument("text", nargs="?", metavar="TEXT", help="the text (default: read from stdin)")
    p.add_argument("-c", "--config", required=True, metavar="CONFIG", help="a config file or a shipped config name")
    p.add_argument("--json", action="store_true", help="print one machine-readable JSON object")
    add_model_options(p)
    from .cli_explain import cmd_explain

    p.set_defaults(handler=cmd_explain)


def _add_models(sub: Any) -> None:
    p = sub.add_parser("models", help="list, download and locate models", description="Manage models.",
                       epilog=MODELS_EPILOG)
    p.set_defaults(handler=cmd_models_list, json=False)
    actions = p.add_subparsers(title="actions", dest="action", metavar="ACTION")
    listing = actions.add_parser("list", help="known models, whether they are available, size, license",
                                 epilog="example:\n  lpclassify models list")
    listing.add_argument("--json", action="store_true", help="print JSON Lines instead of a table")
    listing.set_defaults(handler=cmd_models_list)
    pull = actions.add_parser("pull", help="download and verify a model, print its path",
                              epilog="example:\n  lpclassify models pull smollm2-135m")
    pull.add_argument("name", metavar="NAME", help="a registry name (see `lpclassify models list`)")
    pull.add_argument("--force", action="store_true", help="fetch again even if a verified copy is cached")
    pull.set_defaults(handler=cmd_models_pull)
    path = actions.add_parser("path", help="print the path of a model file",
                              epilog="example:\n  lpclassify models path default")
    path.add_argument("name", metavar="NAME", help="a registry name, 'default', or a .gguf path")
    path.set_defaults(handler=cmd_models_path)


# --------------------------------------------------------------------------- shared helpers


def _shipped_config_dirs() -> list[Path]:
    dirs = []
    with contextlib.suppress(Exception):  # an unusual loader: fall back to the source tree
        from importlib import resources

        packaged = Path(str(resources.files("lpclassify") / "_data" / "configs"))
        if packaged.is_dir():
            dirs.append(packaged)
    if REPO_CONFIGS.is_dir():
        dirs.append(REPO_CONFIGS)
    return dirs


def shipped_configs() -> dict[str, Path]:
    """Name -> path of every config shipped with lpclassify."""
    found: dict[str, Path] = {}
    for directory in _shipped_config_dirs():
        for path in sorted(directory.glob("*.y*ml")):
            found.setdefault(path.stem, path)
    return found


def resolve_config(spec: str) -> Path:
    """A ``-c`` value -> a config path: an existing file, else the name of a shipped config."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    bare = bool(spec) and "/" not in spec and os.sep not in spec and path.suffix.lower() not in (".yaml", ".yml")
    if not bare:
        return path  # load_config says precisely what is wrong with it
    shipped = shipped_configs()
    if spec in shipped:
        return shipped[spec]
    close = difflib.get_close_matches(spec, list(shipped), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    names = ", ".join(shipped) or "none found"
    raise ConfigError(f"no such file, and not a shipped config; {hint}(shipped configs: {names})", source=spec)


def load_config_arg(spec: str) -> Config:
    from .config import load_config

    return load_config(resolve_config(spec))


def load_classifier(config: Config, args: argparse.Namespace, model: str | None = None) -> Classifier:
    """The classifier for ``config`` with the command line's model and runtime overrides."""
    from .classifier import Classifier

    overrides = {key: value for key in ("batch_size", "threads")
                 if (value := getattr(args, key, None)) is not None}
    return Classifier.from_config(config, model or getattr(args, "model", None) or None,
                                  download=bool(getattr(args, "download", False)),
                                  verbose=bool(getattr(args, "verbose", False)), **overrides)


def warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def log_info(message: str) -> None:
    """A progress message, shown with --verbose."""
    logging.getLogger("lpclassify").info(message)


def _one_line(message: object) -> str:
    return " ".join(str(message).split("\n")).strip()


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _terminal_width() -> int:
    return shutil.get_terminal_size((100, 24)).columns


class Records:
    """An opened input: its records, how to name it in messages, and (for files) its size."""

    def __init__(self, records: Iterable[lpio.InputRecord], source: str, unit: str = "line",
                 file: lpio.InputFile | None = None, interactive: bool = False) -> None:
        self.records = records
        self.source = source
        self.unit = unit
        self.file = file
        self.interactive = interactive

    def __iter__(self) -> Iterator[lpio.InputRecord]:
        return iter(self.records)

    def items(self) -> Iterator[lpio.InputRecord | lpio.InputRecordError]:
        """Records and bad records in input order (see :meth:`lpclassify.io.RecordReader.items`)."""
        items = getattr(self.records, "items", None)
        return items() if callable(items) else iter(self.records)

    @property
    def identity(self) -> str:
        """What a resumed run must read again: the input file's absolute path, or ``<stdin>``/``<arguments>``."""
        return str(self.file.path.resolve()) if self.file is not None else self.source

    def where(self, first: int, last: int | None = None) -> str:
        """``in.jsonl:3``, ``in.jsonl: lines 1-32``, ``argument 2``, ``arguments 1-4``: for messages."""
        if last is None or last == first:
            return f"{self.source}:{first}" if self.unit == "line" else f"{self.unit} {first}"
        span = f"{self.unit}s {first}-{last}"
        return f"{self.source}: {span}" if self.unit == "line" else span


def open_records(args: argparse.Namespace, stack: contextlib.ExitStack) -> Records:
    """The records named by ``args.texts``/``args.input``/stdin (``--input-format``, ``--text-field``)."""
    texts = getattr(args, "texts", None) or []
    path = getattr(args, "input", None)
    fmt = getattr(args, "input_format", None)
    field = getattr(args, "text_field", "text")
    if texts and path:
        raise InputError("give texts as arguments or with --input, not both")
    if texts:
        return Records(lpio.text_records(texts), "<arguments>", unit="argument")
    if path and path != "-":
        fmt = fmt or lpio.input_format_for(path)
        infile = stack.enter_context(lpio.InputFile(path))
        return Records(lpio.RecordReader(infile.stream, fmt, source=path, text_field=field), path, file=infile)
    stdin = sys.stdin
    if stdin is None:
        raise InputError("no texts given and there is no standard input to read them from")
    stream = getattr(stdin, "buffer", None)
    if stream is None:  # a text-only stdin (embedded use): encode back to bytes, line by line
        stream = (line.encode("utf-8") for line in stdin)
    interactive = False
    with contextlib.suppress(AttributeError, ValueError):
        interactive = stdin.isatty()
    reader = lpio.RecordReader(stream, fmt or "txt", source="<stdin>", text_field=field)  # type: ignore[arg-type]
    return Records(reader, "<stdin>", interactive=interactive)


# --------------------------------------------------------------------------- progress


class Progress:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, stream: TextIO, total_bytes: int, position: Callable[[], int]) -> None:
        self.stream = stream
        self.total = total_bytes
        self.position = position
        self.start = time.monotonic()
        self._last = 0.0
        self._drawn = False
        self.done = 0

    def update(self, done: int, *, force: bool = False) -> None:
        self.done = done
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        elapsed = max(now - self.start, 1e-9)
        fraction = min(self.position() / self.total, 1.0) if self.total else 0.0
        width = 24
        filled = int(fraction * width)
        bar = "#" * filled + "-" * (width - filled)
        eta = ""
        if 0.02 < fraction < 1.0:
            remaining = elapsed / fraction - elapsed
            eta = f"  eta {int(remaining // 60)}:{int(remaining % 60):02d}"
        line = f"[{bar}] {fraction:4.0%}  {done} text{'s' if done != 1 else ''}  {done / elapsed:.1f}/s{eta}"
        self.stream.write("\r" + line.ljust(_terminal_width() - 1)[: _terminal_width() - 1])
        self.stream.flush()
        self._drawn = True

    def clear(self) -> None:
        if self._drawn:
            self.stream.write("\r" + " " * (_terminal_width() - 1) + "\r")
            self.stream.flush()
            self._drawn = False

    def close(self) -> None:
        self.update(self.done, force=True)
        elapsed = time.monotonic() - self.start
        self.stream.write(f"\n{PROG}: classified {self.done} text{'s' if self.done != 1 else ''} in {elapsed:.1f} s\n")
        self.stream.flush()


# --------------------------------------------------------------------------- classify


def cmd_classify(args: argparse.Namespace) -> int:
    config = load_config_arg(args.config)
    output = args.output if args.output and args.output != "-" else None
    fmt = args.format or (lpio.output_format_for(output) if output else None)
    if fmt is None:
        fmt = "table" if output is None and _stdout_is_terminal() else "jsonl"
    if args.resume and output is None:
        raise InputError("--resume continues the output file of an interrupted run: give it with -o FILE")
    skip_errors = args.errors == "skip"
    with contextlib.ExitStack() as stack:
        records = open_records(args, stack)
        input_path = records.file.path if records.file is not None else None
        rejected_target = Path(args.rejected) if args.rejected else runfiles.default_rejected_path(
            output, str(input_path) if input_path else None)
        for name, path in (("--output", output), ("the rejected-records file", skip_errors and rejected_target)):
            if path and input_path is not None and lpio.same_file(input_path, path):
                raise InputError(f"{name} {path} is the input file; write somewhere else")
        # Checked before the model loads: a bad -o or --resume fails fast.
        run = runfiles.RunFiles(output, fmt, resume=args.resume) if output else None
        clf = load_classifier(config, args)
        if run is not None:
            run.start({"input": records.identity, "format": fmt, "text_field": args.text_field,
                       "config": runfiles.fingerprint(clf.config, getattr(clf.backend, "model_path", None))})
            if run.resuming:
                log_info(f"resuming {run.partial}: {run.done} input records already done")
            elif args.resume:
                log_info(f"no {run.partial} to resume: starting from the first record")
            stream: TextIO = run.stream  # type: ignore[assignment]
            rejected = run.rejected if skip_errors else None
        else:
            stream = sys.stdout
            rejected = runfiles.RejectedLog(rejected_target) if skip_errors else None
            if rejected is not None:
                stack.callback(rejected.close)
        writer = lpio.make_writer(fmt, stream, clf.config.label_names, flush=True, width=_terminal_width(),
                                  multi=clf.config.decision.mode == "multi",
                                  csv_columns=run.csv_columns if run is not None else None)
        show_progress = args.progress if args.progress is not None else _stderr_is_terminal()
        progress = None
        if show_progress and records.file is not None:
            progress = Progress(sys.stderr, records.file.size, records.file.position)
        if records.interactive:
            print(f"{PROG}: reading texts from the terminal, one per line; end with Ctrl-D", file=sys.stderr)
        try:
            truncated = classify_records(clf, records, writer, rejected=rejected, skip=run.done if run else 0,
                                         after_write=run.written if run else None, progress=progress,
                                         clear_progress=output is None and _stdout_is_terminal(),
                                         chunk_size=1 if records.interactive else None)
            writer.close()
        except BaseException as exc:
            if run is not None and (kept := run.abandon(writer.count)):
                exc.hint = (f"{kept} input records are done and kept in {run.partial}; "  # type: ignore[attr-defined]
                            "run the same command with --resume to continue")
            raise
        if run is not None:
            run.commit(rejected_target, remove_stale=skip_errors)
        if progress is not None:
            progress.close()
    for name in sorted(writer.renamed):
        warn(f"the input field {name!r} is written as 'input_{name}': the prediction's {name!r} takes its place")
    dropped = getattr(writer, "dropped", None)
    if dropped:
        warn(f"CSV columns come from the first record; field(s) {', '.join(sorted(dropped))} of later records "
             "were left out (use JSON Lines output to keep them)")
    if truncated:
        warn(f"{truncated} text{'s were' if truncated != 1 else ' was'} truncated to fit n_ctx={clf.backend.n_ctx} "
             "(runtime.long_inputs: chunk scores long texts whole, in windows)")
    n_rejected = (run.rejected.count if run is not None and run.rejected else rejected.count if rejected else 0)
    if n_rejected:
        warn(f"{n_rejected} of {writer.count + n_rejected} records {'were' if n_rejected != 1 else 'was'} rejected "
             f"and set aside in {rejected_target} (line and reason for each)")
    return EXIT_OK


EMPTY_TEXT = ("empty text; nothing to classify (set runtime.empty_text: abstain in the config to abstain on empty "
              "texts instead)")


def classify_records(clf: Classifier, records: Records, writer: lpio.Writer, *,
                     rejected: runfiles.RejectedLog | None = None, skip: int = 0,
                     after_write: Callable[[], None] | None = None, progress: Progress | None = None,
                     clear_progress: bool = False, chunk_size: int | None = None) -> int:
    """Classify a stream of records in order, writing each result as soon as it is ready.

    A bad record (the reader's, or an empty text the config does not abstain on) stops the
    run, or with ``rejected`` goes there, in its place in the input order: rows and rejected
    records together are then always the first N input records, which ``--resume`` relies on.
    The first ``skip`` input records (good or bad) are passed over. Returns how many texts
    were truncated.
    """
    pending: collections.deque[lpio.InputRecord | lpio.InputRecordError] = collections.deque()
    allow_empty = clf.config.runtime.empty_text == "abstain"
    seen = 0
    truncated = 0
    reading_failed = False  # the input's own errors name their place already

    def texts() -> Iterator[str]:
        nonlocal reading_failed
        try:
            yield from read()
        except LpclassifyError:
            reading_failed = True
            raise

    def read() -> Iterator[str]:
        nonlocal seen
        for item in records.items():
            seen += 1
            if seen <= skip:
                continue
            if isinstance(item, lpio.InputRecord) and not allow_empty and not item.text.strip():
                if rejected is None:
                    raise _record_error(records, item.line, EMPTY_TEXT)
                item = lpio.InputRecordError(records.source, item.line, EMPTY_TEXT, item.fields)
            if isinstance(item, lpio.InputRecordError):
                if rejected is None:
                    raise item
                pending.append(item)
                continue
            pending.append(item)
            yield item.text
        if seen < skip:
            raise InputError(f"cannot resume: the input has {seen} records, but the partial output already holds "
                             f"{skip}; is it the same input?")

    def set_aside() -> None:
        while pending and isinstance(pending[0], lpio.InputRecordError):
            error = pending.popleft()
            assert rejected is not None
            rejected.write(error)
            if after_write is not None:
                after_write()

    try:
        for prediction in clf.iter_classify(texts(), chunk_size=chunk_size):
            set_aside()
            record = pending.popleft()
            assert isinstance(record, lpio.InputRecord)
            if progress is not None and clear_progress:
                progress.clear()
            writer.write(record, prediction.as_dict())
            truncated += prediction.truncated
            if after_write is not None:
                after_write()
            if progress is not None:
                progress.update(writer.count)
        set_aside()
    except LpclassifyError as exc:
        if reading_failed or not pending:
            raise
        raise InputError(f"{records.where(pending[0].line, pending[-1].line)}: {_one_line(exc)}") from None
    return truncated


class _ArgumentError(InputError):
    """A bad text given as an argument (the counterpart of io.InputRecordError)."""


def _record_error(records: Records, line: int, message: str) -> InputError:
    if records.unit == "line":
        return lpio.InputRecordError(records.source, line, message)
    return _ArgumentError(f"{records.where(line)}: {message}")


# --------------------------------------------------------------------------- tables


def _table(out: TextIO, header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def fmt(row: Sequence[str]) -> str:
        cells = [str(cell).rjust(w) if i in right else str(cell).ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        return "  " + "  ".join(cells).rstrip() + "\n"

    out.write(fmt(header))
    for row in rows:
        out.write(fmt(row))


# --------------------------------------------------------------------------- models


def _registry_name(name: str) -> str:
    from .models import DEFAULT_MODEL

    return DEFAULT_MODEL if name.strip() in ("", "default") else name


def cmd_models_list(args: argparse.Namespace) -> int:
    from .models import DEFAULT_MODEL, cache_dir, list_models

    entries = list_models()
    if args.json:
        for entry, status in entries:
            print(json.dumps({"name": entry.name, "status": status, "size": entry.size, "license": entry.license,
                              "default": entry.name == DEFAULT_MODEL, "description": entry.description}))
        return EXIT_OK
    rows = [(entry.name + (" *" if entry.name == DEFAULT_MODEL else ""), status, _size(entry.size), entry.license,
             entry.description) for entry, status in entries]
    _table(sys.stdout, ("NAME", "STATUS", "SIZE", "LICENSE", "DESCRIPTION"), rows, right=(2,))
    print(f"\n* default model.  Cache: {cache_dir()}")
    if any(status != "cached" for _, status in entries):
        print("Fetch a model with `lpclassify models pull NAME` (installed models are assembled on first use).")
    return EXIT_OK


def _size(size: int) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


def cmd_models_pull(args: argparse.Namespace) -> int:
    from .models import pull

    logger = logging.getLogger("lpclassify")
    if logger.level > logging.INFO or logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)  # say what is being downloaded: it can take minutes
    path = pull(_registry_name(args.name), force=args.force)
    print(path)
    return EXIT_OK


def cmd_models_path(args: argparse.Namespace) -> int:
    from .models import resolve_model

    print(resolve_model(args.name))
    return EXIT_OK


# --------------------------------------------------------------------------- main


class _StderrHandler(logging.Handler):
    """lpclassify's log messages as ``lpclassify: ...`` lines on the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            prefix = "warning: " if record.levelno >= logging.WARNING else ""
            print(f"{PROG}: {prefix}{record.getMessage()}", file=sys.stderr)
        except Exception:  # logging must never break the command
            self.handleError(record)


@contextlib.contextmanager
def _logging(verbose: bool) -> Iterator[None]:
    logger = logging.getLogger("lpclassify")
    handler = _StderrHandler()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so that the same clean-up as for Ctrl-C runs."""


@contextlib.contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """While a command runs, SIGTERM unwinds the stack (removing a partial -o file) instead of killing."""

    def handler(signum: int, frame: object) -> None:
        raise _Terminated

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError, AttributeError):  # not the main thread, or no SIGTERM here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_status(code: object) -> int:
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return EXIT_USER


def _print_hint(exc: BaseException) -> None:
    """A second line a command attached to its exception (``exc.hint``), e.g. how to resume."""
    hint = getattr(exc, "hint", None)
    if hint:
        print(f"{PROG}: {hint}", file=sys.stderr)


def _flush_stdout() -> None:
    with contextlib.suppress(Exception):
        sys.stdout.flush()


def _silence_stdout() -> None:
    """After EPIPE: point stdout at /dev/null so the interpreter's final flush stays quiet."""
    with contextlib.suppress(Exception):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    debug = os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(list(argv) if argv is not None else None)
        except SystemExit as exc:  # --help, --version, bad arguments
            return _exit_status(exc.code)
        debug = debug or bool(getattr(args, "debug", False))
        handler = getattr(args, "handler", None) or getattr(args, "func", None)
        if handler is None:
            parser.print_help(sys.stderr)
            return EXIT_USER
        with _logging(bool(getattr(args, "verbose", False))), _terminate_cleanly():
            status = handler(args)
        _flush_stdout()
        return int(status or 0)
    except KeyboardInterrupt as exc:
        _flush_stdout()
        terminated = isinstance(exc, _Terminated)
        print(f"\n{PROG}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        _print_hint(exc)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except LpclassifyError as exc:
        _flush_stdout()
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        _print_hint(exc)
        return EXIT_USER
    except SystemExit as exc:  # a plugin command that exits on its own
        return _exit_status(exc.code)
    except Exception as exc:  # the last resort: a bug
        _flush_stdout()
        if debug:
            traceback.print_exc()
        print(f"{PROG}: internal error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        print(f"{PROG}: this is a bug; please report it with the command you ran"
              + ("" if debug else f" and the traceback (rerun with --debug or {DEBUG_ENV}=1 to see it)"),
              file=sys.stderr)
        _print_hint(exc)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover - `python -m lpclassify` goes through __main__.py
    sys.exit(main())
