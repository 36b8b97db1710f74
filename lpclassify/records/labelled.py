"""Labelled examples (``eval``, ``calibrate``, ``tune``), read through the same readers as ``classify``."""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence

from ..errors import InputError
from ..inputs import Input, is_blank
from .readers import InputFile, InputRecordError, RecordReader, input_format_for


def read_labeled(path: str | os.PathLike[str], *, text_field: str = "text", label_field: str = "label",
                 limit: int | None = None, fmt: str | None = None, fields: Sequence[str] | None = None,
                 label_names: Sequence[str] | None = None,
                 label_order: Sequence[str] | None = None) -> tuple[list[Input], list[str | int | list[str]]]:
    """Texts (or, with ``fields``, records of them: see :class:`RecordReader`) and labels (label names,
    or integer indices as stored; multi-label: lists of names) from a labelled file.

    Any format ``classify`` reads: ``.jsonl``, ``.csv``/``.tsv`` (whose labels are strings),
    gzipped or not; a file name that names no format is read as JSON Lines. Only the first
    ``limit`` records are read. Every problem is an :class:`InputError` naming the file and line;
    with ``label_names`` (the config's), so is a label that is none of them (``label_order``:
    what integer labels mean, default the config's order), with a did-you-mean.
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
            if label_names is not None and (problem := label_problem(label, label_names, label_order)):
                raise InputRecordError(source, line, f"field {label_field!r}: {problem}")
            texts.append(text)
            labels.append(label)
            if limit is not None and len(texts) >= limit:
                break  # stop before the next record: a bad one after the limit does not matter
    if not texts:
        raise InputError(f"{source}: no records")
    return texts, labels


def label_problem(label: str | int | list[str], names: Sequence[str], order: Sequence[str] | None = None) -> str | None:
    """What is wrong with a true label (None: nothing): a name that is not the config's, an index out of range.

    >>> label_problem("Joy", ["joy", "anger"])
    "label 'Joy' is not a label of the config (joy, anger); did you mean 'joy'?"
    """
    if isinstance(label, list):
        return next((problem for item in label if (problem := label_problem(item, names, order))), None)
    if isinstance(label, int):
        meaning = order if order is not None else names
        if not 0 <= label < len(meaning):
            return (f"label index {label} is out of range: there are {len(meaning)} labels "
                    f"({', '.join(meaning)}), numbered from 0" + ("" if order else "; --label-order says what "
                                                                  "integer labels mean"))
        return None
    if label in names:
        return None
    hint = [name for name in names if name.lower() == label.strip().lower()] or difflib.get_close_matches(
        label, list(names), n=1)
    extra = f"; did you mean {hint[0]!r}?" if hint else ""
    return f"label {label!r} is not a label of the config ({', '.join(names)}){extra}"
