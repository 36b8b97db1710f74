"""Parquet files in and out, through pyarrow (the ``ray`` extra): the format large datasets come in.

Reading streams one record batch at a time, so a file of any size takes constant memory; a
record's "line" is its 1-based row number. Writing (:class:`RowGroupWriter`) adds a row group at a
time; the file is readable once it is closed, so an interrupted run closes it to keep its rows.

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
    names = list(columns) if columns is not None else list(rows[0]) if rows else []
    writer = RowGroupWriter(stream, names)
    writer.write(rows)
    writer.close()


# The types a column may be declared with (``RowGroupWriter(types=...)``); other columns' types are inferred.
TYPES = ("string", "strings", "float", "bool", "int")


class RowGroupWriter:
    """Rows written as they come, one row group per :meth:`write`, to a file that is complete once closed.

    The first rows fix the schema: ``types`` declares columns by name (one of :data:`TYPES`), the
    others' types are inferred (a column that is null throughout the first rows is a string column).
    ``previous``, a table read back from an interrupted run's file, is written first and fixes the
    schema instead: a Parquet file cannot be appended to, so a resumed run copies it.
    """

    def __init__(self, stream: IO[bytes], columns: Sequence[str], *, types: dict[str, str] | None = None,
                 previous: Any = None) -> None:
        self.stream = stream
        self.columns = list(columns)
        self.types = dict(types or {})
        self.previous = previous
        self._writer: Any = None
        self._schema: Any = previous.schema if previous is not None else None

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        """One row group of ``rows`` (nothing for none)."""
        if rows:
            table = self._table(rows)
            self._open(table)

    def _table(self, rows: Sequence[dict[str, Any]]) -> Any:
        import pyarrow as pa

        pyarrow_parquet()
        kinds = {"string": pa.string(), "strings": pa.list_(pa.string()), "float": pa.float64(), "bool": pa.bool_(),
                 "int": pa.int64()}
        try:
            if self._schema is not None:
                return pa.Table.from_pylist([{name: row.get(name) for name in self._schema.names} for row in rows],
                                            schema=self._schema)
            arrays = []
            for name in self.columns:
                values = [row.get(name) for row in rows]
                array = pa.array(values, type=kinds[self.types[name]] if name in self.types else None)
                arrays.append(array.cast(pa.string()) if pa.types.is_null(array.type) else array)
            return pa.Table.from_arrays(arrays, names=self.columns)
        except (pa.ArrowException, TypeError) as exc:  # a field that is a number in one record, a string in another
            raise InputError(f"cannot write Parquet: {exc}; every record's field must have one type") from None

    def _open(self, table: Any) -> None:
        pq = pyarrow_parquet()
        if self._writer is None:
            self._schema = table.schema
            self._writer = pq.ParquetWriter(self.stream, self._schema)
            if self.previous is not None and self.previous.num_rows:
                self._writer.write_table(self.previous, row_group_size=ROW_GROUP)
        self._writer.write_table(table, row_group_size=ROW_GROUP)

    def close(self) -> None:
        """Write the footer (and, without any rows, the schema of an empty table): the file is complete."""
        if self._writer is None:  # no new rows: the previous run's, or an empty table with the columns
            self._open(self._table([]))
        self._writer.close()


def read_table(path: Any, *, source: str) -> Any:
    """A whole Parquet file as a pyarrow Table (an interrupted run's rows); InputError when it cannot be read."""
    pq = pyarrow_parquet()
    import pyarrow as pa

    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError, EOFError, ValueError) as exc:
        raise InputError(f"{source}: cannot read as Parquet: {exc}") from None
