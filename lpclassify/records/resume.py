"""The files of a ``classify -o OUTPUT`` run: written as it goes, resumable, nothing lost.

While a run is under way its rows go to ``OUTPUT.partial`` (flushed after every record,
fsynced every few seconds), the records it rejects (``--errors skip``) to
``OUTPUT.partial.rejected.jsonl``, and what it reads to ``OUTPUT.partial.json``: the input,
the output format, the text field and a fingerprint of the config and model. When the run
completes, the rows are renamed to ``OUTPUT`` and the rejected records to their side file,
so a file named ``OUTPUT`` is always complete.

``OUTPUT.gz`` is gzipped as it goes (a resumed run appends a gzip member). Parquet cannot be
appended to: its rows go, in row groups, to ``OUTPUT.partial.next``, which the writer closes on
an interruption and which then replaces ``OUTPUT.partial``; a resumed run copies those rows first.

An interrupted or failed run leaves the partial files (unless they hold nothing). ``--resume``
checks that the new run reads the same input with the same config, drops a torn last
line, counts the rows and rejected records already written (each input record gave exactly
one of them, in input order, so together they are the number of input records done),
and appends from the record after them.

This module never prints; errors are :class:`~lpclassify.errors.InputError`.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import json
import os
import time
import zlib
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TextIO

from ..errors import InputError
from ..inputs import encoding_problem
from .files import write_json_atomic
from .readers import InputRecordError
from .writers import is_gzip

if TYPE_CHECKING:
    from ..config import Config

PARTIAL = ".partial"
SYNC_SECONDS = 5.0  # fsync at most this often: flushing per record already survives a killed process
RESUMABLE_FORMATS = ("jsonl", "csv", "tsv", "parquet")


def fingerprint(config: Config, model_path: str | os.PathLike[str] | None) -> str:
    """What the rows depend on: the config (wherever it was loaded from) and the model file.

    Threads and batch size change nothing in the scores (the engine is exact), so a run may be
    resumed with others; batch calibration aside, which averages over batches.
    """
    runtime = replace(config.runtime, threads=None)
    if config.scoring.calibration != "batch":
        runtime = replace(runtime, batch_size=0)
    config = replace(config, source="", runtime=runtime)
    model: dict[str, Any] = {}
    if model_path is not None:
        with contextlib.suppress(OSError):
            model = {"name": Path(model_path).name, "size": Path(model_path).stat().st_size}
    blob = json.dumps({"config": repr(config), "model": model}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def default_rejected_path(output: str | None, input_path: str | None) -> Path:
    """Where ``--errors skip`` puts rejected records: next to the output, else next to the input file.

    ``out.jsonl`` -> ``out.rejected.jsonl``; ``data/in.csv.gz`` -> ``data/in.rejected.jsonl``;
    stdin or texts as arguments, written to stdout -> ``rejected.jsonl``.
    """
    base = output or input_path
    if not base:
        return Path("rejected.jsonl")
    path = Path(base)
    name = path.name[: -len(".gz")] if path.name.lower().endswith(".gz") else path.name
    stem = Path(name).stem or name
    return path.with_name(f"{stem}.rejected.jsonl")


class RejectedLog:
    """Rejected records as JSON Lines (source, line, reason, the record), opened at the first one."""

    def __init__(self, path: Path, *, append: bool = False) -> None:
        self.path = path
        self.count = 0
        self._append = append
        self._stream: TextIO | None = None

    def write(self, error: InputRecordError) -> None:
        """One rejected record: where it is, why, and the record itself (``error.raw``)."""
        if self._stream is None:
            try:
                self._stream = open(self.path, "a" if self._append else "w", encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                raise InputError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        entry = {"source": error.source, "line": error.line, "reason": error.message, "record": error.raw}
        line = json.dumps(entry, ensure_ascii=False)
        if encoding_problem(line):  # undecodable bytes of an argument (lone surrogates): keep them as \u escapes
            line = json.dumps(entry)
        self._stream.write(line + "\n")
        self._stream.flush()
        self.count += 1

    def sync(self) -> None:
        if self._stream is not None:
            self._stream.flush()
            os.fsync(self._stream.fileno())

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


class RunFiles:
    """``OUTPUT.partial`` and its companions for one run; see the module docstring.

    Call :meth:`commit` when the run completes, :meth:`abandon` when it does not.
    """

    def __init__(self, output: str | os.PathLike[str], fmt: str, *, resume: bool) -> None:
        self.target = Path(output)
        self.format = fmt
        self.partial = self.target.with_name(self.target.name + PARTIAL)
        self.meta = self.target.with_name(self.partial.name + ".json")
        self.rejected_partial = self.target.with_name(self.partial.name + ".rejected.jsonl")
        self.done = 0  # input records a resumed run skips: rows plus rejected records already written
        self.csv_columns: list[str] | None = None  # the header row of a resumed CSV
        self.compressed = is_gzip(self.target)  # out.jsonl.gz: the partial file is gzipped too
        self.stream: IO[Any] | None = None  # text, binary for Parquet
        self.previous: Any = None  # Parquet: the rows of the run resumed (a pyarrow Table), copied first
        # Parquet cannot be appended to: a resumed run writes the old rows and the new to NEXT, which
        # replaces the partial file once closed (complete, or interrupted and closed cleanly).
        self.next = self.target.with_name(self.partial.name + ".next") if fmt == "parquet" else self.partial
        self.rejected: RejectedLog | None = None
        self._resume = resume and self.partial.exists()
        self._last_sync = time.monotonic()
        if self.target.is_dir():
            raise InputError(f"cannot write {self.target}: it is a directory")
        if not self.target.parent.is_dir():
            raise InputError(f"cannot write {self.target}: the directory {self.target.parent} does not exist")
        if not os.access(self.target.parent, os.W_OK):
            raise InputError(f"cannot write {self.target}: the directory {self.target.parent} is not writable")
        if resume and fmt not in RESUMABLE_FORMATS:
            raise InputError(f"--resume needs JSON Lines, CSV, TSV or Parquet output, not {fmt}")
        if resume and not self._resume and self.target.exists():  # nothing to continue: never replace a finished file
            raise InputError(f"--resume: {self.target} is complete (there is no {self.partial} to continue), so "
                             f"there is nothing to resume and it was left as it is; to classify again, run without "
                             f"--resume (it replaces {self.target}) or write to another file")
        if not resume and self.partial.exists():
            raise InputError(f"{self.partial} holds the rows of an interrupted run: continue it with --resume, "
                             f"or delete {self.partial}* to start over")

    @property
    def resuming(self) -> bool:
        return self._resume

    def start(self, identity: dict[str, str]) -> None:
        """Check (resume) or record (fresh run) what the run reads; open the partial files."""
        if self._resume:
            self._check(identity)
            if self.format == "parquet":
                from .parquet import read_table  # pyarrow: an optional extra

                self.previous = read_table(self.partial, source=f"cannot resume: {self.partial}")
                rows = self.previous.num_rows
            else:
                rows, self.csv_columns = complete_rows(self.partial, self.format, compressed=self.compressed)
            rejected = complete_rows(self.rejected_partial, "jsonl")[0] if self.rejected_partial.exists() else 0
            self.done = rows + rejected
        else:
            self._write_meta(identity)
            self.rejected_partial.unlink(missing_ok=True)
        self.stream = self._open(append=self._resume)
        self.rejected = RejectedLog(self.rejected_partial, append=True)
        self.rejected = RejectedLog(self.rejected_partial, append=True)

    def _open(self, *, append: bool) -> IO[Any]:
        try:
            if self.format == "parquet":
                return open(self.next, "wb")
            if self.compressed:  # appending adds a gzip member: readers read them as one stream
                return gzip.open(self.partial, "at" if append else "wt", encoding="utf-8", newline="")
            return open(self.partial, "a" if append else "w", encoding="utf-8", newline="")
        except OSError as exc:
            raise InputError(f"cannot write {self.partial}: {exc.strerror or exc}") from None

    def _check(self, identity: dict[str, str]) -> None:
        try:
            recorded = json.loads(self.meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise InputError(f"cannot resume: {self.meta}, which says what {self.partial} was made from, is missing "
                             f"or damaged; delete {self.partial}* to start over") from None
        what = {"input": "the input", "format": "the output format", "text_field": "the text field",
                "config": "the config or model (fingerprint)"}
        for key, name in what.items():
            if recorded.get(key) != identity.get(key):
                raise InputError(f"cannot resume: {self.partial} was made from {name} {recorded.get(key)!r}, not "
                                 f"{identity.get(key)!r}; run the same command as before with --resume, or delete "
                                 f"{self.partial}* to start over")

    def _write_meta(self, identity: dict[str, str]) -> None:
        write_json_atomic(self.meta, {"format_version": 1, **identity})

    def written(self) -> None:
        """After each record: fsync now and then (flushing is the writer's job)."""
        if time.monotonic() - self._last_sync >= SYNC_SECONDS:
            self._sync()

    def _sync(self) -> None:
        if self.stream is not None:
            self.stream.flush()
            os.fsync(self.stream.fileno())
        if self.rejected is not None:
            self.rejected.sync()
        self._last_sync = time.monotonic()

    def commit(self, rejected_target: Path, *, remove_stale: bool) -> None:
        """The run is complete: rename the rows to OUTPUT and the rejected records to ``rejected_target``.

        With ``remove_stale``, a ``rejected_target`` left by an earlier run goes when this one rejected nothing.
        """
        try:
            self._sync()
            self._close()
            os.replace(self.next, self.target)
            self.partial.unlink(missing_ok=True)  # Parquet: the resumed run's rows, all copied to NEXT
            if self.rejected_partial.exists():
                os.replace(self.rejected_partial, rejected_target)
            elif remove_stale:
                rejected_target.unlink(missing_ok=True)
            self.meta.unlink(missing_ok=True)
        except OSError as exc:
            raise InputError(f"cannot write {self.target}: {exc.strerror or exc}") from None

    def _close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        if self.rejected is not None:
            self.rejected.close()

    def abandon(self) -> int:
        """Close after a failure; returns how many input records the partial files hold (0: they were removed).

        The count is read from the files, as ``--resume`` reads it (a torn last row is cut off): an
        interruption can land between a row's write and any counter's increment.
        """
        with contextlib.suppress(OSError, ValueError):
            self._sync()
        self._close()
        if self.next != self.partial:
            rows = self._keep_parquet()
        elif self.partial.exists():
            rows = complete_rows(self.partial, self.format, compressed=self.compressed)[0]
        else:
            rows = 0
        rejected = complete_rows(self.rejected_partial, "jsonl")[0] if self.rejected_partial.exists() else 0
        total = rows + rejected
        if total == 0:
            for path in (self.partial, self.meta, self.rejected_partial):
                path.unlink(missing_ok=True)
        return total

    def _keep_parquet(self) -> int:
        """After a failure: NEXT, closed by its writer, replaces the partial file; returns the rows kept.

        A NEXT that cannot be read (the writer could not close it) is dropped: the partial file keeps
        the rows it had.
        """
        from .parquet import pyarrow_parquet

        pq = pyarrow_parquet()
        try:
            pq.read_metadata(self.next)
            os.replace(self.next, self.partial)
        except Exception:
            self.next.unlink(missing_ok=True)
        try:
            return int(pq.read_metadata(self.partial).num_rows)
        except Exception:
            return 0


def complete_rows(path: Path, fmt: str, *, compressed: bool = False) -> tuple[int, list[str] | None]:
    """Count the complete rows of a partial file (JSON Lines, CSV, TSV; gzipped or not) and cut off a torn
    last one.

    Returns the number of rows (a CSV header not counted) and, for CSV/TSV, the header.
    """
    data = _gunzip_what_is_there(path.read_bytes()) if compressed else None
    with (io.BytesIO(data) if data is not None else open(path, "rb")) as handle:
        if fmt == "jsonl":
            good, rows, header = _complete_lines(handle)
        else:
            good, rows, header = _complete_csv_rows(handle, "\t" if fmt == "tsv" else ",")
    if data is None:
        with open(path, "r+b") as handle:
            handle.truncate(good)
    else:  # a gzip stream cannot be cut at a row: write the complete rows again, as one member
        tmp = path.with_name(path.name + ".tmp")
        with gzip.open(tmp, "wb") as out:
            out.write(data[:good])
        os.replace(tmp, path)
    return rows, header


def _complete_lines(handle: IO[bytes]) -> tuple[int, int, None]:
    good = rows = 0  # bytes up to the end of the last complete row
    for raw in handle:
        if not raw.endswith(b"\n"):
            break  # torn: the process died while writing it
        good += len(raw)
        rows += 1
    return good, rows, None


def _gunzip_what_is_there(blob: bytes) -> bytes:
    """The bytes a gzip file decompresses to, up to where it was cut off (members one after another)."""
    out = []
    while blob:
        member = zlib.decompressobj(wbits=31)
        try:
            out.append(member.decompress(blob))
        except zlib.error:
            break
        if not member.eof:  # cut off in this member: what it gave so far is all there is
            out.append(member.flush())
            break
        blob = member.unused_data
    return b"".join(out)


def _complete_csv_rows(handle: IO[bytes], delimiter: str) -> tuple[int, int, list[str] | None]:
    """CSV rows may span lines (quoted newlines): parse them, tracking where each complete one ends."""
    offset = [0]

    def lines() -> Any:
        for raw in handle:
            if not raw.endswith(b"\n"):
                return  # a torn last line
            offset[0] += len(raw)
            yield raw.decode("utf-8", errors="replace")

    reader = csv.reader(lines(), strict=True, delimiter=delimiter)
    good, rows, header = 0, 0, None
    try:
        for row in reader:
            if header is None:
                header = row
            elif len(row) != len(header):
                break
            else:
                rows += 1
            good = offset[0]
    except csv.Error:  # an unclosed quote: the last row is torn
        pass
    return good, rows, header if good else None
