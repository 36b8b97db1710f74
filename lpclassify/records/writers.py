"""Output records: a prediction written next to its input record, as JSON Lines, CSV or a table.

Writers take an input record and a prediction (``Prediction.as_dict()``) and write one
output record: JSON Lines and CSV keep every input field and add the prediction's; the
table writer prints a compact line per text for a terminal. :func:`json_safe` is the one
place where NaN and infinities become ``null`` (JSON has neither).

This module never prints to the terminal on its own and never exits: :mod:`lpclassify.cli` does.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from ..errors import InputError
from ..inputs import input_words
from .readers import InputRecord

OUTPUT_FORMATS = ("jsonl", "csv", "table", "parquet")

# The keys a prediction adds to an output record (``Prediction.as_dict()``).
PREDICTION_KEYS = ("label", "labels", "probabilities", "abstained", "reason", "truncated", "chunks")


def output_format_for(path: str | os.PathLike[str]) -> str | None:
    """The output format a file name implies, or None when it implies none."""
    suffix = Path(path).suffix.lower()
    return {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".jsonlines": "jsonl",
            ".parquet": "parquet"}.get(suffix)


def json_safe(value: Any) -> Any:
    """``value`` with every NaN and infinity (an abstention on an empty text, say) as None: JSON has neither.

    Recurses into dicts, lists and tuples (tuples come back as lists, as JSON writes them).

    >>> json_safe({"p": [0.5, float("nan")], "q": float("inf")})
    {'p': [0.5, None], 'q': None}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def flat_columns(label_names: Sequence[str]) -> list[str]:
    """The columns a prediction adds to a flat row (CSV, Parquet, a Ray dataset), in order: the one layout."""
    return ["label", "labels", *(f"prob_{name}" for name in label_names), "abstained", "reason", "truncated", "chunks"]


def flat_prediction(prediction: dict[str, Any], label_names: Sequence[str]) -> dict[str, Any]:
    """A prediction (``Prediction.as_dict()``'s keys) as the values of :func:`flat_columns`."""
    probabilities = prediction.get("probabilities") or {}
    flat: dict[str, Any] = {"label": prediction.get("label"), "labels": ";".join(prediction.get("labels") or ())}
    for name in label_names:
        flat[f"prob_{name}"] = probabilities.get(name)
    flat["abstained"] = prediction.get("abstained", False)
    flat["reason"] = prediction.get("reason")
    flat["truncated"] = prediction.get("truncated", False)
    flat["chunks"] = prediction.get("chunks", 1)
    return flat


def input_name(key: str, fields: Any, taken: Any, out: Any) -> str:
    """An input field's name in the output: itself, or ``input_<name>`` (repeated) where the prediction's
    columns (``taken``), the input's other fields or the names already given (``out``) hold it."""
    if key not in taken:
        return key
    new = f"input_{key}"
    while new in fields or new in taken or new in out:
        new = f"input_{new}"
    return new


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
        new = input_name(key, fields, taken, out)
        out[new] = value
        if new != key:
            renamed.append(key)
    out.update(json_safe(prediction))
    return out, renamed


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
        self.prediction_columns = flat_columns(self.label_names)
        self.columns: list[str] | None = list(columns) if columns is not None else None
        self.dropped: set[str] = set()
        self._writer = csv.writer(stream, delimiter=delimiter, lineterminator="\n")

    def _flat(self, prediction: dict[str, Any]) -> dict[str, Any]:
        return flat_prediction(prediction, self.label_names)

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


class ParquetWriter(CsvWriter):
    """Parquet with :class:`CsvWriter`'s columns (typed: probabilities as floats), through pyarrow.

    A Parquet file cannot be appended to, so the rows are kept and written as one file by
    :meth:`close` (to ``stream``'s binary buffer); :attr:`count` stays 0 until then, so an
    interrupted run keeps no partial rows (``--resume`` is for JSON Lines and CSV).
    """

    def __init__(self, stream: TextIO, label_names: Sequence[str], *, flush: bool = False) -> None:
        super().__init__(stream, label_names)
        self.rows: list[dict[str, Any]] = []

    def write(self, record: InputRecord, prediction: dict[str, Any]) -> None:
        merged, renamed = merge_record(record.fields, self._flat(prediction), reserved=self.prediction_columns)
        self.renamed.update(renamed)
        if self.columns is None:
            self.columns = list(merged)
        self.dropped.update(key for key in merged if key not in self.columns)
        self.rows.append(merged)

    def close(self) -> None:
        from .parquet import write_rows  # pyarrow: an optional extra

        self.stream.flush()
        write_rows(getattr(self.stream, "buffer", self.stream), self.rows, self.columns or self.prediction_columns)
        self.count = len(self.rows)
        super(CsvWriter, self).close()


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
        text = _cut(" ".join(input_words(record.text).split()), max(room, 10))
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
    if fmt == "parquet":
        return ParquetWriter(stream, label_names, flush=flush)
    if fmt == "table":
        return TableWriter(stream, label_names, width=width, flush=flush, multi=multi)
    raise InputError(f"unknown output format {fmt!r}; expected one of {', '.join(OUTPUT_FORMATS)}")
