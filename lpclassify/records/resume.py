"""The files of a ``classify -o OUTPUT`` run: written as it goes, resumable, nothing lost.

While a run is under way its rows go to ``OUTPUT.partial`` (flushed after every record,
fsynced every few seconds), the records it rejects (``--errors skip``) to
``OUTPUT.partial.rejected.jsonl``, and what it reads to ``OUTPUT.partial.json``: the input,
the output format, the text field and a fingerprint of the config and model. When the run
completes, the rows are renamed to ``OUTPUT`` and the rejected records to their side file,
so a file named ``OUTPUT`` is always complete.

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
import hashlib
import io
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import InputError
from .files import write_json_atomic
from .readers import InputRecordError

if TYPE_CHECKING:
    from ..config import Config

PARTIAL = ".partial"
SYNC_SECONDS = 5.0  # fsync at most this often: flushing per record already survives a killed process
RESUMABLE_FORMATS = ("jsonl", "csv")


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
        self._stream.write(json.dumps(entry, ensure_ascii=False) + "\n")
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
        self.stream: TextIO | None = None
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
            raise InputError(f"--resume needs JSON Lines or CSV output, not {fmt}")
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
            rows, self.csv_columns = complete_rows(self.partial, self.format)
            rejected = complete_rows(self.rejected_partial, "jsonl")[0] if self.rejected_partial.exists() else 0
            self.done = rows + rejected
        else:
            self._write_meta(identity)
            self.rejected_partial.unlink(missing_ok=True)
        try:
            self.stream = open(self.partial, "a" if self._resume else "w", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as exc:
            raise InputError(f"cannot write {self.partial}: {exc.strerror or exc}") from None
        self.rejected = RejectedLog(self.rejected_partial, append=True)

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
            os.replace(self.partial, self.target)
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

    def abandon(self, new_rows: int) -> int:
        """Close after a failure; returns how many records the partial files hold (0: they were removed)."""
        with contextlib.suppress(OSError, ValueError):
            self._sync()
        self._close()
        total = self.done + new_rows + (self.rejected.count if self.rejected is not None else 0)
        if total == 0:
            for path in (self.partial, self.meta, self.rejected_partial):
                path.unlink(missing_ok=True)
        return total


def complete_rows(path: Path, fmt: str) -> tuple[int, list[str] | None]:
    """Count the complete rows of a partial file and cut off a torn last one.

    Returns the number of rows (a CSV header not counted) and, for CSV, the header.
    """
    good = 0  # bytes up to the end of the last complete row
    rows = 0
    header: list[str] | None = None
    with open(path, "rb") as handle:
        if fmt == "jsonl":
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break  # torn: the process died while writing it
                good += len(raw)
                rows += 1
        else:
            good, rows, header = _complete_csv_rows(handle)
    with open(path, "r+b") as handle:
        handle.truncate(good)
    return rows, header


def _complete_csv_rows(handle: io.BufferedReader) -> tuple[int, int, list[str] | None]:
    """CSV rows may span lines (quoted newlines): parse them, tracking where each complete one ends."""
    offset = [0]

    def lines() -> Any:
        for raw in handle:
            if not raw.endswith(b"\n"):
                return  # a torn last line
            offset[0] += len(raw)
            yield raw.decode("utf-8", errors="replace")

    reader = csv.reader(lines(), strict=True)
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
