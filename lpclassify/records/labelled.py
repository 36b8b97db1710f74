"""Labelled examples (``eval``, ``calibrate``, ``tune``), read through the same readers as ``classify``."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..errors import InputError
from ..inputs import Input, is_blank
from .readers import InputFile, InputRecordError, RecordReader, input_format_for


def read_labeled(path: str | os.PathLike[str], *, text_field: str = "text", label_field: str = "label",
                 limit: int | None = None, fmt: str | None = None,
                 fields: Sequence[str] | None = None) -> tuple[list[Input], list[str | int | list[str]]]:
    """Texts (or, with ``fields``, records of them: see :class:`RecordReader`) and labels (label names,
    or integer indices as stored; multi-label: lists of names) from a labelled file.

    Any format ``classify`` reads: ``.jsonl``, ``.csv``/``.tsv`` (whose labels are strings),
    gzipped or not; a file name that names no format is read as JSON Lines. Only the first
    ``limit`` records are read. Every problem is an :class:`InputError` naming the file and line.
    """
    if fmt is None:
        try:
            fmt = input_format_for(path)
        except InputError:  # eval and calibrate have always read any file name as JSON Lines
            fmt = "jsonl"
    source = str(path)
    texts: list[Input] = []
    labels: list[str | int | list[str]] = []
    with InputFile(path) as infile:
        reader = RecordReader(infile.stream, fmt, source=source, text_field=text_field, fields=fields)
        for line, record, text in reader:
            if label_field not in record:
                names = ", ".join(map(repr, record)) or "none"
                raise InputRecordError(source, line, f"no field {label_field!r} in this record (its fields: {names}); "
                                                     "choose the label field with --label-field")
            label = record[label_field]
            if is_blank(text):
                raise InputRecordError(source, line, f"field {text_field!r} must be a non-empty string" if
                                       isinstance(text, str) else "the prompt's fields are all empty")
            names_list = isinstance(label, list) and all(isinstance(item, str) for item in label)
            if not names_list and (isinstance(label, bool) or not isinstance(label, (str, int))):
                raise InputRecordError(source, line, f"field {label_field!r} must be a label name or an integer "
                                                     f"index (or, multi-label, a list of names), got {label!r}")
            texts.append(text)
            labels.append(label)
            if limit is not None and len(texts) >= limit:
                break  # stop before the next record: a bad one after the limit does not matter
    if not texts:
        raise InputError(f"{source}: no records")
    return texts, labels
