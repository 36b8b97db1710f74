"""Parquet files in and out, through pyarrow (the ``ray`` extra): the format large datasets come in.

Reading streams one record batch at a time, so a file of any size takes constant memory; a
record's "line" is its 1-based row number. Writing collects rows and writes row groups of
:data:`ROW_GROUP` rows; a Parquet file cannot be appended to, so an output is written whole.

>>> import io as _io                                                       # doctest: +SKIP
>>> buffer = _io.BytesIO()                                                 # doctest: +SKIP
>>> write_rows(buffer, [{"id": 1, "text": "Great!"}])                      # doctest: +SKIP
>>> list(read_rows(buffer, source="in.parquet"))                           # doctest: +SKIP
[(1, {'id': 1, 'text': 'Great!'})]

This module knows nothing of records or predictions (:mod:`.readers` and :mod:`.writers` do).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from typing import IO, Any

from ..errors import InputError

BATCH_ROWS = 1024
ROW_GROUP = 4096
NEEDS = "reading and writing Parquet needs pyarrow: pip install 'lpclassify[ray]' (or pip install pyarrow)"


def pyarrow_parquet() -> Any:
    """``pyarrow.parquet``, or an InputError that says how to install it."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(NEEDS) from None
    return pq


def read_rows(stream: IO[bytes], *, source: str, columns: Sequence[str] | None = None) -> Iterator[tuple[int, dict]]:
    """``(row number, fields)`` for every row of a Parquet file, streamed a batch at a time."""
    pq = pyarrow_parquet()
    import pyarrow as pa

    try:
        file = pq.ParquetFile(stream)
        names = file.schema_arrow.names
        if columns is not None and (missing := [c for c in columns if c not in names]):
            raise InputError(f"{source}: no column {missing[0]!r} (columns: {', '.join(map(repr, names))}); "
                             "choose the text column with --text-field")
        number = 0
        for batch in file.iter_batches(batch_size=BATCH_ROWS):
            for fields in batch.to_pylist():
                number += 1
                yield number, fields
    except (pa.ArrowException, OSError, EOFError, ValueError, zlib.error) as exc:  # a truncated or foreign file
        raise InputError(f"{source}: cannot read as Parquet: {exc}") from None


def write_rows(stream: IO[bytes], rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> None:
    """Write ``rows`` (dicts with the same keys; ``columns`` orders them) as one Parquet file."""
    pq = pyarrow_parquet()
    import pyarrow as pa

    names = list(columns) if columns is not None else list(rows[0]) if rows else []
    try:
        table = pa.Table.from_pydict({name: [row.get(name) for row in rows] for name in names})
    except pa.ArrowException as exc:  # a field that is a number in one record and a string in another
        raise InputError(f"cannot write Parquet: {exc}; every record's field must have one type") from None
    pq.write_table(table, stream, row_group_size=ROW_GROUP)
