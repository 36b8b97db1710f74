"""Input records: files (JSON Lines, CSV/TSV, plain text, any of them gzipped) and texts, read lazily.

Every reader turns a file into a stream of :class:`InputRecord` ``(line, fields, text)``
tuples: the 1-based line the record starts on, the record's own fields (kept untouched and
written back next to the prediction) and the text to classify. Nothing is read ahead, so a
file of any size streams in constant memory, and every problem is an
:class:`InputRecordError` that names the file and line. :meth:`RecordReader.items` hands bad
records over in file order instead of raising, so a caller can set them aside (``classify
--errors skip``) and still count every input record.

>>> import io as _io
>>> reader = RecordReader(_io.BytesIO(b'{"id": 7, "text": "Great!"}\\n'), "jsonl", source="in.jsonl")
>>> [tuple(record) for record in reader]
[(1, {'id': 7, 'text': 'Great!'}, 'Great!')]

:func:`.labelled.read_labeled` reads labelled examples (``eval``, ``calibrate``) through the same
readers, so every input format and every message is the same for all commands.
This module never prints and never exits: :mod:`lpclassify.cli` does.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import json
import os
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO, NamedTuple

from ..errors import InputError
from ..inputs import Input

INPUT_FORMATS = ("jsonl", "csv", "tsv", "txt", "parquet")
ERROR_POLICIES = ("fail", "skip")

_SUFFIX_FORMATS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".jsonlines": "jsonl",
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv",
    ".txt": "txt", ".text": "txt",
    ".parquet": "parquet",
}  # fmt: skip
_UTF8_BOM = b"\xef\xbb\xbf"


class InputRecord(NamedTuple):
    """One input record: where it starts, its fields, and what to classify.

    ``text`` is the text, or, for a template that uses fields other than ``{text}``, the
    template's fields as a mapping (``{text}`` read from the text field).
    """

    line: int
    fields: dict[str, Any]
    text: Input


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

    ``fmt`` is one of :data:`INPUT_FORMATS`. ``text_field`` names the JSON key or CSV column
    holding the text. ``fields`` are the fields a template uses (``{text}`` is read from
    ``text_field``): with more than one, each record's ``text`` is a mapping of them. With
    ``errors="fail"`` (the default) the first bad record raises :class:`InputRecordError`; with
    ``errors="skip"`` bad records are left out and their errors collected in :attr:`skipped`.
    """

    def __init__(self, stream: BinaryIO | IO[bytes], fmt: str, *, source: str, text_field: str = "text",
                 errors: str = "fail", fields: Sequence[str] | None = None) -> None:
        if fmt not in INPUT_FORMATS:
            raise InputError(f"unknown input format {fmt!r}; expected one of {', '.join(INPUT_FORMATS)}")
        if errors not in ERROR_POLICIES:
            raise ValueError(f"errors must be one of {ERROR_POLICIES}, got {errors!r}")
        self.stream = stream
        self.format = fmt
        self.source = source
        self.text_field = text_field
        self.errors = errors
        self.fields = tuple(fields) if fields else ("text",)
        self.columns = [text_field if name == "text" else name for name in self.fields]
        self.records = len(self.fields) > 1  # a mapping of fields per record, not one text
        if self.records and fmt == "txt":
            raise InputError(f"{source}: a text file holds one text per line, but the prompt uses the fields "
                             f"{', '.join(self.fields)}; give a .jsonl or .csv file with them")
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
        if self.format == "parquet":
            return self._parquet()
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

    def _missing(self, column: str, available: Sequence[str], what: str = "field") -> str:
        """``no field 'x' in this record (its fields: ...); did you mean ...`` for a field the prompt needs."""
        listed = ", ".join(map(repr, available)) or "none"
        where = "in this record (its fields" if what == "field" else "in the header (columns"
        hint = difflib.get_close_matches(column, [str(a) for a in available], n=1)
        if column == self.text_field:
            fix = f"choose the text {what} with --text-field"
            fix = f"did you mean {hint[0]!r}? or {fix}" if hint else fix
        else:
            fix = f"the prompt uses {{{column}}}" + (f"; did you mean {hint[0]!r}?" if hint else "")
        return f"no {what} {column!r} {where}: {listed}); {fix}"

    def _values(self, number: int, record: dict[str, Any], line: str) -> Input | InputRecordError:
        """The record's text, or the mapping of the template's fields."""
        values: dict[str, str] = {}
        for name, column in zip(self.fields, self.columns, strict=True):
            if column not in record:
                return self._bad(number, self._missing(column, list(record)), line)
            value = record[column]
            if not isinstance(value, str):
                return self._bad(number, f"field {column!r} is {_json_type(value)}, expected a string", line)
            values[name] = value
        return values if self.records else values[self.fields[0]]

    def _json_record(self, number: int, line: str) -> InputRecord | InputRecordError:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            return self._bad(number, f"invalid JSON: {exc.msg} (column {exc.colno})", line)
        except (ValueError, RecursionError) as exc:  # an integer of 5000 digits, [[[[... nested too deep
            return self._bad(number, f"invalid JSON: {type(exc).__name__}: {exc}", line)
        if not isinstance(record, dict):
            return self._bad(number, f"expected a JSON object, got {_json_type(record)}", line)
        values = self._values(number, record, line)
        return values if isinstance(values, InputRecordError) else InputRecord(number, record, values)

    def _parquet(self) -> Iterator[InputRecord | InputRecordError]:
        from .parquet import read_rows  # pyarrow: an optional extra

        for number, fields in read_rows(self.stream, source=self.source, columns=self.columns):
            values = self._values(number, fields, "")
            if isinstance(values, InputRecordError):
                yield InputRecordError(self.source, number, values.message, fields)
            else:
                yield InputRecord(number, fields, values)

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
                for name in self.columns:
                    if name not in header:
                        raise InputRecordError(self.source, start, self._missing(name, header, "column"))
                continue
            if len(row) != len(header):
                yield self._bad(start, f"expected {len(header)} columns as in the header, got {len(row)}",
                                "".join(consumed))
                continue
            fields = dict(zip(header, row, strict=True))
            named = zip(self.fields, self.columns, strict=True)
            yield InputRecord(start, fields, {n: fields[c] for n, c in named} if self.records
                              else fields[self.columns[0]])


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
