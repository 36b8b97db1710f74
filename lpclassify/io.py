"""Input readers and output writers for the command line: records in, records out, lazily.

Every reader turns a file (JSON Lines, CSV/TSV, plain text) into a stream of
:class:`InputRecord` ``(line, fields, text)`` tuples: the 1-based line the record starts
on, the record's own fields (kept untouched and written back next to the prediction) and
the text to classify. Nothing is read ahead, so a file of any size streams in constant
memory, and every problem is an :class:`InputRecordError` that names the file and line.
:meth:`RecordReader.items` hands bad records over in file order instead of raising, so a
caller can set them aside (``classify --errors skip``) and still count every input record.

>>> import io as _io
>>> reader = RecordReader(_io.BytesIO(b'{"id": 7, "text": "Great!"}\\n'), "jsonl", source="in.jsonl")
>>> [tuple(record) for record in reader]
[(1, {'id': 7, 'text': 'Great!'}, 'Great!')]

Writers take an input record and a prediction (``Prediction.as_dict()``) and write one
output record: JSON Lines and CSV keep every input field and add the prediction's; the
table writer prints a compact line per text for a terminal.

This module never prints to the terminal on its own and never exits: ``cli.py`` does.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import math
import os
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO, NamedTuple, TextIO

from .errors import InputError

INPUT_FORMATS = ("jsonl", "csv", "tsv", "txt")
OUTPUT_FORMATS = ("jsonl", "csv", "table")
ERROR_POLICIES = ("fail", "skip")

# The keys a prediction adds to an output record (``Prediction.as_dict()``).
PREDICTION_KEYS = ("label", "labels", "probabilities", "abstained", "reason", "truncated", "chunks")

_SUFFIX_FORMATS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".jsonlines": "jsonl",
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv",
    ".txt": "txt", ".text": "txt",
}  # fmt: skip
_UTF8_BOM = b"\xef\xbb\xbf"


class InputRecord(NamedTuple):
    """One input record: where it starts, its fields, and the text to classify."""

    line: int
    fields: dict[str, Any]
    text: str


class InputRecordError(InputError):
    """A record that cannot be read: bad JSON or CSV, bad encoding, a missing text field...

    ``str()`` is ``"SOURCE:LINE: MESSAGE"``; ``source``, ``line`` and ``message`` are kept
    apart so that a caller can skip the record and report it later; ``raw`` is the record as
    read (the line, undecodable bytes as ``\\xNN`` escapes; or its fields when it was read
    fine and refused later) so that a skipped record is never lost.
    """

    def __init__(self, source: str, line: int, message: str, raw: Any = None) -> None:
        self.source = source
        self.line = line
        self.message = message
        self.raw = raw
        super().__init__(f"{source}:{line}: {message}")


# --------------------------------------------------------------------------- opening files


def input_format_for(path: str | os.PathLike[str]) -> str:
    """The input format a file name implies (``.jsonl``, ``.csv``, ``.tsv``, ``.txt``, optionally ``.gz``)."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    suffix = suffixes[-1] if suffixes else ""
    if suffix in _SUFFIX_FORMATS:
        return _SUFFIX_FORMATS[suffix]
    if suffix == ".json":
        raise InputError(f"{path}: a .json file is not supported; write one JSON object per line (.jsonl), "
                         "or pass --input-format jsonl if it already is JSON Lines")
    known = ", ".join(sorted(_SUFFIX_FORMATS))
    raise InputError(f"{path}: cannot tell the input format from the file name (known: {known}); "
                     f"pass --input-format {'|'.join(INPUT_FORMATS)}")


def output_format_for(path: str | os.PathLike[str]) -> str | None:
    """The output format a file name implies, or None when it implies none."""
    suffix = Path(path).suffix.lower()
    return {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".jsonlines": "jsonl"}.get(suffix)


class InputFile:
    """An opened input file: a binary line stream plus how far into the file it has read."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self._raw: BinaryIO = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        except FileNotFoundError:
            raise InputError(f"input file not found: {self.path}") from None
        except IsADirectoryError:
            raise InputError(f"{self.path} is a directory, expected an input file") from None
        except OSError as exc:
            raise InputError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        try:
            self.size = os.fstat(self._raw.fileno()).st_size
        except OSError:  # pragma: no cover - fstat on an open file practically never fails
            self.size = 0
        if self.path.suffix.lower() == ".gz":
            self.stream: BinaryIO = gzip.GzipFile(fileobj=self._raw, mode="rb")  # type: ignore[assignment]
        else:
            self.stream = self._raw

    def position(self) -> int:
        """Bytes of the file read so far (compressed bytes for ``.gz``); for progress bars."""
        try:
            return self._raw.tell()
        except (OSError, ValueError):
            return 0

    def close(self) -> None:
        if self.stream is not self._raw:
            self.stream.close()
        self._raw.close()

    def __enter__(self) -> InputFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --------------------------------------------------------------------------- reading


class RecordReader:
    """Iterate a binary stream as :class:`InputRecord` tuples, lazily.

    ``fmt`` is one of :data:`INPUT_FORMATS`. ``text_field`` names the JSON key or CSV
    column holding the text. With ``errors="fail"`` (the default) the first bad record
    raises :class:`InputRecordError`; with ``errors="skip"`` bad records are left out and
    their errors collected in :attr:`skipped`.
    """

    def __init__(self, stream: BinaryIO | IO[bytes], fmt: str, *, source: str, text_field: str = "text",
                 errors: str = "fail") -> None:
        if fmt not in INPUT_FORMATS:
            raise InputError(f"unknown input format {fmt!r}; expected one of {', '.join(INPUT_FORMATS)}")
        if errors not in ERROR_POLICIES:
            raise ValueError(f"errors must be one of {ERROR_POLICIES}, got {errors!r}")
        self.stream = stream
        self.format = fmt
        self.source = source
        self.text_field = text_field
        self.errors = errors
        self.skipped: list[InputRecordError] = []

    def __iter__(self) -> Iterator[InputRecord]:
        for item in self.items():
            if isinstance(item, InputRecordError):
                if self.errors == "fail":
                    raise item
                self.skipped.append(item)
            else:
                yield item

    def items(self) -> Iterator[InputRecord | InputRecordError]:
        """Every record and every bad record, in file order, whatever ``errors`` says.

        Only problems that end the file (an unreadable stream, a CSV header without the
        text column) raise.
        """
        if self.format == "jsonl":
            return self._jsonl()
        if self.format in ("csv", "tsv"):
            return self._csv("\t" if self.format == "tsv" else ",")
        return self._txt()

    # ------------------------------------------------------------------ helpers

    def _bad(self, line: int, message: str, raw: str | bytes | None = None) -> InputRecordError:
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", errors="backslashreplace")
        return InputRecordError(self.source, line, message, _strip_newline(raw) if raw is not None else None)

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        """(line number, raw bytes with line ending) for every physical line; drops a UTF-8 BOM."""
        try:
            for number, raw in enumerate(self.stream, start=1):
                yield number, raw[len(_UTF8_BOM):] if number == 1 and raw.startswith(_UTF8_BOM) else raw
        except (OSError, EOFError, zlib.error) as exc:  # a truncated or corrupt .gz, a read error
            raise InputError(f"{self.source}: cannot read: {exc}") from None

    def _decode(self, number: int, raw: bytes) -> str | InputRecordError:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return self._bad(number, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the "
                                     "line); convert the file to UTF-8, e.g. with iconv", raw)

    # ------------------------------------------------------------------ formats

    def _txt(self) -> Iterator[InputRecord | InputRecordError]:
        for number, raw in self._lines():
            text = self._decode(number, raw)
            if isinstance(text, InputRecordError):
                yield text
                continue
            text = _strip_newline(text)
            yield InputRecord(number, {"text": text}, text)

    def _jsonl(self) -> Iterator[InputRecord | InputRecordError]:
        for number, raw in self._lines():
            line = self._decode(number, raw)
            if isinstance(line, InputRecordError):
                yield line
            elif line.strip():  # blank lines (a trailing newline, a separating blank) are not records
                yield self._json_record(number, line)

    def _json_record(self, number: int, line: str) -> InputRecord | InputRecordError:
        field = self.text_field
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            return self._bad(number, f"invalid JSON: {exc.msg} (column {exc.colno})", line)
        except (ValueError, RecursionError) as exc:  # an integer of 5000 digits, [[[[... nested too deep
            return self._bad(number, f"invalid JSON: {type(exc).__name__}: {exc}", line)
        if not isinstance(record, dict):
            return self._bad(number, f"expected a JSON object, got {_json_type(record)}", line)
        if field not in record:
            fields = ", ".join(map(repr, record)) or "none"
            return self._bad(number, f"no field {field!r} in this record (its fields: {fields}); "
                                     "choose the text field with --text-field", line)
        text = record[field]
        if not isinstance(text, str):
            return self._bad(number, f"field {field!r} is {_json_type(text)}, expected a string", line)
        return InputRecord(number, record, text)

    def _csv(self, delimiter: str) -> Iterator[InputRecord | InputRecordError]:
        # Texts can be long: lift the csv module's 128 KiB field limit (process-wide, harmless).
        csv.field_size_limit(min(2**31 - 1, 1 << 30))
        numbers = [0]  # the physical line most recently handed to the csv module
        consumed: list[str] = []  # the lines of the row being read (kept for a rejected row)
        undecodable: list[InputRecordError] = []  # bad lines met while reading it: reported first

        def decoded() -> Iterator[str]:
            for number, raw in self._lines():
                numbers[0] = number
                text = self._decode(number, raw)
                # An undecodable line is skipped whole; in a quoted multi-line field that garbles the row,
                # which the row checks below then report.
                if isinstance(text, InputRecordError):
                    undecodable.append(text)
                else:
                    consumed.append(text)
                    yield text

        reader = csv.reader(decoded(), delimiter=delimiter, strict=True)
        header: list[str] | None = None
        column = -1
        while True:
            start = numbers[0] + 1
            consumed.clear()
            try:
                row: list[str] | None = next(reader)
            except StopIteration:
                row = None
            except csv.Error as exc:
                yield from undecodable
                undecodable.clear()
                yield self._bad(max(start, 1), f"malformed {self.format.upper()} row ({exc})", "".join(consumed))
                if numbers[0] < start:  # nothing consumed: the csv module cannot go on
                    return
                continue
            yield from undecodable
            undecodable.clear()
            if row is None:
                return
            if not row:
                continue  # a blank line
            if header is None:
                header = row
                duplicates = sorted({name for name in row if row.count(name) > 1})
                if duplicates:
                    raise InputRecordError(self.source, start, f"column {duplicates[0]!r} appears twice in the header")
                if self.text_field not in header:
                    columns = ", ".join(map(repr, header))
                    raise InputRecordError(self.source, start,
                                           f"no column {self.text_field!r} in the header (columns: {columns}); "
                                           "choose the text column with --text-field")
                column = header.index(self.text_field)
                continue
            if len(row) != len(header):
                yield self._bad(start, f"expected {len(header)} columns as in the header, got {len(row)}",
                                "".join(consumed))
                continue
            yield InputRecord(start, dict(zip(header, row, strict=True)), row[column])


def _strip_newline(text: str) -> str:
    if text.endswith("\n"):
        text = text[:-1]
    if text.endswith("\r"):
        text = text[:-1]
    return text


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(value), type(value).__name__)


def text_records(texts: Sequence[str]) -> Iterator[InputRecord]:
    """Texts given directly (command-line arguments): record ``i`` is ``{"text": text}``."""
    for number, text in enumerate(texts, start=1):
        yield InputRecord(number, {"text": text}, text)


# --------------------------------------------------------------------------- output records


def merge_record(fields: dict[str, Any], prediction: dict[str, Any], *,
                 reserved: Sequence[str] = PREDICTION_KEYS) -> tuple[dict[str, Any], list[str]]:
    """The input fields followed by the prediction's, and the input fields that had to be renamed.

    An input field whose name a prediction uses (a gold ``label`` column, say) is kept as
    ``input_<name>`` rather than overwritten.

    >>> merge_record({"id": 1, "label": "pos"}, {"label": "neg"})
    ({'id': 1, 'input_label': 'pos', 'label': 'neg'}, ['label'])
    """
    taken = set(reserved) | set(prediction)
    renamed: list[str] = []
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key in taken:
            new = f"input_{key}"
            while new in fields or new in taken or new in out:
                new = f"input_{new}"
            out[new] = value
            renamed.append(key)
        else:
            out[key] = value
    out.update(_finite(prediction))
    return out, renamed


def _finite(value: Any) -> Any:
    """NaN and infinities (an abstention on an empty text) become null: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class Writer:
    """Base class: ``write(record, prediction)`` per result, ``close()`` once at the end."""

    def __init__(self, stream: TextIO, *, flush: bool = False) -> None:
        self.stream = stream
        self.flush = flush
        self.renamed: set[str] = set()  # input fields kept as input_<name> (for a warning)
        self.count = 0

    def write(self, record: InputRecord, prediction: dict[str, Any]) -> None:
        self._write(record, prediction)
        self.count += 1
        if self.flush:
            self.stream.flush()

    def _write(self, record: InputRecord, prediction: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.stream.flush()


class JsonlWriter(Writer):
    """One JSON object per line: the input fields, then the prediction."""

    def _write(self, record: InputRecord, prediction: dict[str, Any]) -> None:
        merged, renamed = merge_record(record.fields, prediction)
        self.renamed.update(renamed)
        self.stream.write(json.dumps(merged, ensure_ascii=False) + "\n")


class CsvWriter(Writer):
    """CSV with the input columns, then ``label``, ``labels`` (``;``-separated), one ``prob_<label>``
    column per label, ``abstained``, ``reason``, ``truncated`` and ``chunks``.

    The columns are fixed by the first record; fields that only later records have (JSON
    Lines input can vary) are left out and listed in :attr:`dropped`. ``columns`` continues
    a file whose header row is already written (a resumed run).
    """

    def __init__(self, stream: TextIO, label_names: Sequence[str], *, flush: bool = False,
                 delimiter: str = ",", columns: Sequence[str] | None = None) -> None:
        super().__init__(stream, flush=flush)
        self.label_names = tuple(label_names)
        self.prediction_columns = ["label", "labels", *(f"prob_{name}" for name in self.label_names),
                                   "abstained", "reason", "truncated", "chunks"]
        self.columns: list[str] | None = list(columns) if columns is not None else None
        self.dropped: set[str] = set()
        self._writer = csv.writer(stream, delimiter=delimiter, lineterminator="\n")

    def _flat(self, prediction: dict[str, Any]) -> dict[str, Any]:
        probabilities = prediction.get("probabilities") or {}
        flat: dict[str, Any] = {"label": prediction.get("label"), "labels": ";".join(prediction.get("labels") or ())}
        for name in self.label_names:
            flat[f"prob_{name}"] = probabilities.get(name)
        flat["abstained"] = prediction.get("abstained", False)
        flat["reason"] = prediction.get("reason")
        flat["truncated"] = prediction.get("truncated", False)
        flat["chunks"] = prediction.get("chunks", 1)
        return flat

    def _write(self, record: InputRecord, prediction: dict[str, Any]) -> None:
        merged, renamed = merge_record(record.fields, self._flat(prediction), reserved=self.prediction_columns)
        self.renamed.update(renamed)
        if self.columns is None:
            self.columns = list(merged)
            self._writer.writerow(self.columns)
        self.dropped.update(key for key in merged if key not in self.columns)
        self._writer.writerow([_cell(merged.get(column)) for column in self.columns])

    def close(self) -> None:
        if self.columns is None:  # no records: still a valid CSV with the prediction columns
            self.columns = list(self.prediction_columns)
            self._writer.writerow(self.columns)
        super().close()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class TableWriter(Writer):
    """A readable table for a terminal: line, label, its probability, the text (cut to fit)."""

    def __init__(self, stream: TextIO, label_names: Sequence[str], *, width: int = 100, flush: bool = True,
                 multi: bool = False) -> None:
        super().__init__(stream, flush=flush)
        longest = max((len(name) for name in label_names), default=5)
        self.label_width = min(max(longest * (2 if multi else 1) + (1 if multi else 0), len("(abstain)")), 32)
        self.width = max(width, 40)
        self._header_done = False

    def _header(self) -> None:
        if not self._header_done:
            self.stream.write(f"{'LINE':>5}  {'LABEL':<{self.label_width}}  {'PROB':>5}  TEXT\n")
            self._header_done = True

    def _write(self, record: InputRecord, prediction: dict[str, Any]) -> None:
        self._header()
        probabilities = {k: v for k, v in (prediction.get("probabilities") or {}).items()
                         if isinstance(v, (int, float)) and math.isfinite(v)}
        labels = prediction.get("labels") or []
        if prediction.get("abstained") or not labels:
            label = "(abstain)"
            top = max(probabilities.values(), default=None)
        else:
            label = ",".join(labels)
            top = probabilities.get(labels[0])
        label = _cut(label, self.label_width)
        prob = f"{top:.3f}" if top is not None else "-"
        room = self.width - (5 + 2 + self.label_width + 2 + 5 + 2)
        text = _cut(" ".join(record.text.split()), max(room, 10))
        self.stream.write(f"{record.line:>5}  {label:<{self.label_width}}  {prob:>5}  {text}\n")

    def close(self) -> None:
        self._header()
        super().close()


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def make_writer(fmt: str, stream: TextIO, label_names: Sequence[str], *, flush: bool = False, width: int = 100,
                multi: bool = False, csv_columns: Sequence[str] | None = None) -> Writer:
    """A writer for ``fmt`` (one of :data:`OUTPUT_FORMATS`); ``csv_columns``: see :class:`CsvWriter`."""
    if fmt == "jsonl":
        return JsonlWriter(stream, flush=flush)
    if fmt == "csv":
        return CsvWriter(stream, label_names, flush=flush, columns=csv_columns)
    if fmt == "table":
        return TableWriter(stream, label_names, width=width, flush=flush, multi=multi)
    raise InputError(f"unknown output format {fmt!r}; expected one of {', '.join(OUTPUT_FORMATS)}")


# --------------------------------------------------------------------------- atomic output


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, newline: str | None = None) -> Iterator[TextIO]:
    """Write a text file through a temporary file next to it, renamed over ``path`` on success.

    If the body raises (including ``KeyboardInterrupt``), the temporary file is removed and
    ``path`` is left as it was: an interrupted run never leaves a file that looks complete.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise InputError(f"cannot write {target}: it is a directory")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except FileNotFoundError:
        raise InputError(f"cannot write {target}: the directory {directory} does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as stream:
            yield stream
            try:
                stream.flush()
                os.fsync(stream.fileno())
            except OSError as exc:
                raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
        try:
            _chmod_like_new_file(tmp)
            os.replace(tmp, target)
        except OSError as exc:
            raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _chmod_like_new_file(path: Path) -> None:
    """mkstemp creates 0600; give the result the permissions ``open()`` would have."""
    umask = os.umask(0)
    os.umask(umask)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~umask)


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when two paths name the same existing file."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False

