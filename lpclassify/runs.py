"""A classification run: records -> classifier -> writer, in input order, one record at a time.

:func:`open_records` opens what to read (texts, a file, standard input) as :class:`Records`;
:func:`classify_records` classifies them and hands each result to a writer as soon as it is
ready, setting bad records aside (``--errors skip``), skipping what a resumed run already
did, and moving a :class:`Progress` bar. The files that make a run resumable are
:mod:`lpclassify.records.resume`'s.

This module never prints on its own and never exits: the streams it writes to (the output,
the progress bar's) are handed in by :mod:`lpclassify.cli`.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from .errors import InputError, LpclassifyError, one_line
from .inputs import Input, encoding_problem, is_blank
from .records.readers import InputFile, InputRecord, InputRecordError, RecordReader, input_format_for, text_records
from .records.resume import RejectedLog, fingerprint
from .records.writers import Writer

if TYPE_CHECKING:
    from tqdm import tqdm

    from .classifier import Classifier

_UTF8_BOM = b"\xef\xbb\xbf"
EMPTY_TEXT = ("empty text; nothing to classify (set runtime.empty_text: abstain in the config to abstain on empty "
              "texts instead)")


def model_path(clf: Classifier) -> str | None:
    """The model file behind a classifier, or None (a backend without one): for messages and fingerprints."""
    return clf.backend.identity().path


def run_fingerprint(clf: Classifier) -> str:
    """What a resumed run must share with the run it continues: the config and the model file."""
    return fingerprint(clf.config, model_path(clf))


# --------------------------------------------------------------------------- records


class Records:
    """An opened input: its records, how to name it in messages, and (for files) its size."""

    def __init__(self, records: Iterable[InputRecord], source: str, unit: str = "line",
                 file: InputFile | None = None, interactive: bool = False, notice: str | None = None) -> None:
        self.records = records
        self.notice = notice  # a line to show the user about how the input is read
        self.source = source
        self.unit = unit
        self.file = file
        self.interactive = interactive

    def __iter__(self) -> Iterator[InputRecord]:
        return iter(self.records)

    def items(self) -> Iterator[InputRecord | InputRecordError]:
        """Records and bad records in input order (see :meth:`lpclassify.records.readers.RecordReader.items`)."""
        if isinstance(self.records, RecordReader):
            return self.records.items()
        return iter(self.records)

    @property
    def blank_lines(self) -> int:
        """Blank lines of a text input skipped so far (they are no texts)."""
        return self.records.blank_lines if isinstance(self.records, RecordReader) else 0

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


def open_records(stack: contextlib.ExitStack, *, texts: Sequence[str] = (), path: str | None = None,
                 fmt: str | None = None, text_field: str = "text", stdin: TextIO | None = None,
                 fields: Sequence[str] | None = None) -> Records:
    """The records to classify: ``texts``, else the file ``path`` (``-``: stdin), else ``stdin`` line by line.

    ``fmt`` is the input format (default: from the file name; for stdin, ``jsonl`` when it starts with ``{``
    (see :attr:`Records.notice`), else ``txt``); an opened
    file is closed by ``stack``. ``fields``: the fields the prompt uses (see :class:`RecordReader`).
    """
    if texts and path:
        raise InputError("give texts as arguments or with --input, not both")
    if texts:
        return Records(text_records(texts), "<arguments>", unit="argument")
    if path and path != "-":
        fmt = fmt or input_format_for(path)
        infile = stack.enter_context(InputFile(path))
        return Records(RecordReader(infile.stream, fmt, source=path, text_field=text_field, fields=fields), path,
                       file=infile)
    if stdin is None:
        raise InputError("no texts given and there is no standard input to read them from")
    stream = getattr(stdin, "buffer", None)
    if stream is None:  # a text-only stdin (embedded use): encode back to bytes, line by line
        stream = (line.encode("utf-8") for line in stdin)
    interactive = False
    with contextlib.suppress(AttributeError, ValueError):
        interactive = stdin.isatty()
    notice = None
    if fmt is None and not interactive:  # a terminal is typed into: nothing to look at before the first text
        first: bytes = next(iter(stream), b"")
        stream = itertools.chain([first], stream) if first else stream
        if first.removeprefix(_UTF8_BOM).lstrip().startswith(b"{"):
            fmt = "jsonl"
            notice = (f"standard input starts with '{{': reading it as JSON Lines, the text in the field "
                      f"{text_field!r} (--input-format txt reads each line as a text)")
    reader = RecordReader(stream, fmt or "txt", source="<stdin>", text_field=text_field,  # type: ignore[arg-type]
                          fields=fields)
    return Records(reader, "<stdin>", interactive=interactive, notice=notice)


# --------------------------------------------------------------------------- progress


class Progress:
    """A tqdm bar over the bytes of an input file read so far, with the count of texts written.

    Bytes rather than texts because a streamed file's number of texts is unknown until the end,
    while its size is known at the start: that is what gives a fraction and an ETA.
    """

    def __init__(self, file: InputFile, stream: TextIO) -> None:
        self.file = file
        self.texts = 0
        self.start = time.monotonic()
        self.bar = progress_bar(stream, total=file.size or None, unit="B", unit_scale=True, unit_divisor=1024)

    def update(self, texts: int) -> None:
        self.texts = texts
        self.bar.set_postfix_str(f"{texts} text{'s' if texts != 1 else ''}", refresh=False)
        self.bar.update(max(self.file.position() - self.bar.n, 0))

    def clear(self) -> None:
        """Take the bar off the screen so that a row written to the same terminal does not mix with it."""
        self.bar.clear()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def close(self, *, leave: bool = True) -> None:
        """Draw the final state and end the line (``leave``), or wipe the bar (a failed run)."""
        self.bar.leave = leave
        self.bar.close()


def progress_bar(stream: TextIO, **options: Any) -> tqdm:
    """A tqdm bar on ``stream`` that follows the terminal's size, redrawn at most ten times a second."""
    from tqdm import tqdm  # only a run with a bar pays for the import

    # A terminal that reports no size (some ptys do) would make tqdm think the bar is off the screen and
    # draw nothing: assume 100 x 24 then.
    sized = _columns(stream) > 0
    return tqdm(file=stream, dynamic_ncols=sized, ncols=None if sized else 100, nrows=None if sized else 24,
                mininterval=0.1, **options)


def _columns(stream: TextIO) -> int:
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):  # not a terminal, or no file descriptor
        return 0
    return size.columns if size.lines > 0 else 0


# --------------------------------------------------------------------------- classifying


def classify_records(clf: Classifier, records: Records, writer: Writer, *, rejected: RejectedLog | None = None,
                     skip: int = 0, after_write: Callable[[], None] | None = None, progress: Progress | None = None,
                     clear_progress: bool = False, chunk_size: int | None = None, top_k: int | None = None) -> int:
    """Classify a stream of records in order, writing each result as soon as it is ready.

    A bad record (the reader's, or an empty text the config does not abstain on) stops the
    run, or with ``rejected`` goes there, in its place in the input order: rows and rejected
    records together are then always the first N input records, which ``--resume`` relies on.
    The first ``skip`` input records (good or bad) are passed over. ``after_write`` runs after
    every row or rejected record; ``clear_progress`` wipes the bar before each row (rows going
    to the terminal the bar is on); ``top_k`` keeps each row's k most likely labels' probabilities.
    Returns how many texts were truncated.
    """
    pending: collections.deque[InputRecord | InputRecordError] = collections.deque()
    allow_empty = clf.config.runtime.empty_text == "abstain"
    seen = 0
    truncated = 0
    reading_failed = False  # the input's own errors name their place already

    def texts() -> Iterator[Input]:
        nonlocal reading_failed
        try:
            yield from read()
        except LpclassifyError:
            reading_failed = True
            raise

    def read() -> Iterator[Input]:
        nonlocal seen
        for item in records.items():
            seen += 1
            if seen <= skip:
                continue
            problem = None
            if isinstance(item, InputRecord):
                problem = EMPTY_TEXT if not allow_empty and is_blank(item.text) else encoding_problem(item.text)
            if problem is not None:
                assert isinstance(item, InputRecord)
                if rejected is None:
                    raise _record_error(records, item.line, problem)
                item = InputRecordError(records.source, item.line, problem, item.fields)
            if isinstance(item, InputRecordError):
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
        while pending and isinstance(pending[0], InputRecordError):
            error = pending.popleft()
            assert rejected is not None
            rejected.write(error)
            if after_write is not None:
                after_write()

    try:
        for prediction in clf.iter_classify(texts(), chunk_size=chunk_size):
            set_aside()
            record = pending.popleft()
            assert isinstance(record, InputRecord)
            if progress is not None and clear_progress:
                progress.clear()
            writer.write(record, prediction.as_dict(top_k=top_k))
            truncated += prediction.truncated
            if after_write is not None:
                after_write()
            if progress is not None:
                progress.update(writer.count)
        set_aside()
    except LpclassifyError as exc:
        if reading_failed or not pending:
            raise
        raise InputError(f"{records.where(pending[0].line, pending[-1].line)}: {one_line(exc)}") from None
    return truncated


class _ArgumentError(InputError):
    """A bad text given as an argument (the counterpart of :class:`InputRecordError`)."""


def _record_error(records: Records, line: int, message: str) -> InputError:
    if records.unit == "line":
        return InputRecordError(records.source, line, message)
    return _ArgumentError(f"{records.where(line)}: {message}")
