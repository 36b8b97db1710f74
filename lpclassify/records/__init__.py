"""Records in and out, at the edge of the package: nothing here classifies, prints or exits.

* :mod:`.readers` -- input files and texts -> :class:`InputRecord` (JSON Lines, CSV/TSV, text, gz);
  labelled examples for ``eval``/``calibrate`` through the same readers;
* :mod:`.writers` -- a prediction next to its input record: JSON Lines, CSV, a table; :func:`json_safe`;
* :mod:`.files` -- the one atomic file write;
* :mod:`.resume` -- the partial files of a ``classify -o`` run, rejected records, resuming.
"""

from .files import atomic_output, same_file, write_json_atomic
from .labelled import read_labeled
from .readers import (
    ERROR_POLICIES,
    INPUT_FORMATS,
    InputFile,
    InputRecord,
    InputRecordError,
    RecordReader,
    input_format_for,
    text_records,
)
from .writers import OUTPUT_FORMATS, Writer, json_safe, make_writer, merge_record, output_format_for

__all__ = [
    "ERROR_POLICIES", "INPUT_FORMATS", "OUTPUT_FORMATS",
    "InputFile", "InputRecord", "InputRecordError", "RecordReader", "Writer",
    "atomic_output", "input_format_for", "json_safe", "make_writer", "merge_record", "output_format_for",
    "read_labeled", "same_file", "text_records", "write_json_atomic",
]
