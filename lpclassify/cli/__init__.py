"""The ``lpclassify`` command line: classify, validate, explain, models, eval, calibrate, tune, serve.

:func:`main` parses the arguments, runs one command and turns whatever happened into an exit
status. The CLI package is the only place that prints or decides exit statuses:

* 0 -- success;
* 1 -- an internal error (a bug): a short message, the traceback with ``--debug`` or ``LPCLASSIFY_DEBUG=1``;
* 2 -- a user error (any :class:`~lpclassify.errors.LpclassifyError`, bad arguments, an unreadable
  input file, a bad input record): one line ``lpclassify: error: ...`` on stderr, no traceback;
* 130 -- interrupted (Ctrl-C): what was written is flushed; ``classify -o`` keeps ``OUTPUT.partial``
  for ``--resume`` (see :mod:`lpclassify.records.resume`);
* 143 -- terminated (SIGTERM), with the same clean-up;
* 141 -- stdout was closed early (``lpclassify classify ... | head``), as if killed by SIGPIPE.

Each command is a module with ``register(subparsers)``, listed in :data:`COMMANDS`; it sets
``handler``, a function ``(args, ctx) -> int`` (see :mod:`.common`). Every subparser gets
``--verbose`` and ``--debug``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import traceback
from collections.abc import Iterator, Sequence

from .. import __version__
from ..errors import LpclassifyError, error_lines, one_line
from . import calibrate, classify, evaluate, explain, models, serve, tune, validate
from .common import (
    DEBUG_ENV,
    EXIT_BROKEN_PIPE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USER,
    PROG,
    Context,
    Loader,
    ModelRequest,
    Parser,
    SubParser,
    add_common_options,
    load_classifier,
)

__all__ = ["DEBUG_ENV", "Context", "Loader", "ModelRequest", "build_parser", "load_classifier", "main"]

# In the order `lpclassify --help` lists them.
COMMANDS = (classify, validate, explain, models, evaluate, calibrate, tune, serve)

DESCRIPTION = """\
Zero-shot text classification from language-model log-probabilities, on local GGUF
models through llama.cpp. A YAML config names the labels, their candidate completions
and the prompt; lpclassify scores every completion after the prompt and picks a label."""

EPILOG = """\
examples:
  echo "I want a refund, the product broke" | lpclassify classify -c sentiment
  lpclassify classify -c configs/topic.yaml "Stocks rallied after the rate cut"
  lpclassify classify -c spam -i messages.csv -o labelled.csv
  lpclassify explain -c sentiment "Not bad at all"
  lpclassify validate configs/*.yaml --tokens
  lpclassify models list

Run `lpclassify COMMAND --help` for the options of each command."""


def _version() -> str:
    try:
        from importlib.metadata import version

        engine = f" (llama-cpp-python {version('llama-cpp-python')})"
    except Exception:  # the version line must never fail
        engine = ""
    return f"{PROG} {__version__}{engine}"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description=DESCRIPTION, epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=_version())
    add_common_options(parser, suppress=False)
    sub = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", parser_class=SubParser)
    for command in COMMANDS:
        command.register(sub)
    return parser


# --------------------------------------------------------------------------- process plumbing


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


def main(argv: Sequence[str] | None = None, *, load_classifier: Loader | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it).

    ``load_classifier`` is how the commands get a classifier, ``(config, ModelRequest) ->
    Classifier`` (default: :func:`lpclassify.cli.common.load_classifier`, which loads the
    model from disk); pass another to reuse loaded models or to run on a fake backend.
    """
    debug = os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")
    ctx = Context(load_classifier) if load_classifier is not None else Context()
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(list(argv) if argv is not None else None)
        except SystemExit as exc:  # --help, --version, bad arguments
            return _exit_status(exc.code)
        debug = debug or bool(getattr(args, "debug", False))
        handler = getattr(args, "handler", None)
        if handler is None:
            parser.print_help(sys.stderr)
            return EXIT_USER
        with _logging(bool(getattr(args, "verbose", False))), _terminate_cleanly():
            status = handler(args, ctx)
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
        for line in error_lines(exc):  # a config with several problems has a line for each
            print(f"{PROG}: error: {line}", file=sys.stderr)
        _print_hint(exc)
        return EXIT_USER
    except SystemExit as exc:  # a command that exits on its own
        return _exit_status(exc.code)
    except Exception as exc:  # the last resort: a bug
        _flush_stdout()
        if debug:
            traceback.print_exc()
        print(f"{PROG}: internal error: {type(exc).__name__}: {one_line(exc)}", file=sys.stderr)
        print(f"{PROG}: this is a bug; please report it with the command you ran"
              + ("" if debug else f" and the traceback (rerun with --debug or {DEBUG_ENV}=1 to see it)"),
              file=sys.stderr)
        _print_hint(exc)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover - `python -m lpclassify` goes through __main__.py
    sys.exit(main())
