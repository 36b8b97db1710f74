"""The model cache: where registry models live, checking them, and placing them atomically.

Every file is checked against the registry's sha256 and size before it is renamed into
place, so a partial or corrupt file never sits under its final name.

Hashing 250 MB on every start would dominate start-up, so after the first successful
check a sidecar ``<file>.verified`` records sha256, size and mtime; later checks trust it
while size and mtime are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from ..errors import ModelError
from .registry import ModelEntry

logger = logging.getLogger("lpclassify")

CACHE_ENV = "LPCLASSIFY_CACHE"
SIDECAR_SUFFIX = ".verified"

_CHUNK = 1 << 20

#: Opens one source of a model's bytes; a model file is the concatenation of its sources.
Opener = Callable[[], AbstractContextManager[BinaryIO]]


def cache_dir() -> Path:
    """Where registry models are stored: $LPCLASSIFY_CACHE, else the XDG cache dir."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "lpclassify" / "models"


def cached_path(entry: ModelEntry) -> Path:
    """Where ``entry``'s file lives in the cache (whether or not it exists yet)."""
    return cache_dir() / entry.file


def ensure_cache_dir() -> Path:
    """The cache directory, created if needed; a ModelError says how to pick another."""
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(
            f"cannot create the model cache {directory}: {exc.strerror or exc}; set {CACHE_ENV} to a writable directory"
        ) from None
    return directory


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def verify_cached(path: Path, entry: ModelEntry) -> bool:
    """True if ``path`` holds exactly the registry's file; hashes only when the sidecar is stale."""
    try:
        st = path.stat()
    except OSError:
        return False
    if not path.is_file() or st.st_size != entry.size:
        return False
    if _sidecar_matches(path, entry.sha256, st):
        return True
    logger.info("verifying %s (sha256, first use only)", path)
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}; check its permissions") from None
    if digest != entry.sha256:
        logger.warning("%s does not match the registry checksum for '%s'", path, entry.name)
        return False
    _write_sidecar(path, entry.sha256)
    return True


def _sidecar_matches(path: Path, sha256: str, st: os.stat_result) -> bool:
    try:
        record = json.loads(_sidecar(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict)
        and record.get("sha256") == sha256
        and record.get("size") == st.st_size
        and record.get("mtime_ns") == st.st_mtime_ns
    )


def _write_sidecar(path: Path, sha256: str) -> None:
    """Record a successful hash; failing to write it only costs a re-hash next time."""
    try:
        st = path.stat()
        record = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        _sidecar(path).write_text(json.dumps(record) + "\n", encoding="utf-8")
    except OSError as exc:
        logger.debug("could not write %s: %s", _sidecar(path), exc)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def assemble(entry: ModelEntry, sources: Sequence[Opener], origin: str, fix: str) -> Path:
    """Concatenate ``sources`` into the cache, verify, and only then move into place.

    ``origin`` and ``fix`` complete the error message if the result does not match the
    registry's sha256/size. Whatever goes wrong, no partial file is left behind.
    """
    directory = ensure_cache_dir()
    target = directory / entry.file
    logger.info("assembling %s from %s into %s", entry.name, origin, target)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.file}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise ModelError(
            f"cannot write to {directory}: {exc.strerror or exc}; set {CACHE_ENV} to a writable directory"
        ) from None
    tmp = Path(tmp_name)
    try:
        digest, size = _copy_hashing(sources, fd, entry)
        if size != entry.size or digest != entry.sha256:
            raise ModelError(
                f"model '{entry.name}' from {origin} does not match the registry "
                f"(got {size} bytes, sha256 {digest[:16]}...; expected {entry.size} bytes, "
                f"sha256 {entry.sha256[:16]}...); {fix}"
            )
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache is an ordinary data file
        os.replace(tmp, target)
    except OSError as exc:
        raise ModelError(
            f"cannot write {target}: {exc.strerror or exc}; free disk space or set {CACHE_ENV} to another directory"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    _write_sidecar(target, entry.sha256)
    logger.info("model '%s' ready at %s", entry.name, target)
    return target


def _copy_hashing(sources: Sequence[Opener], fd: int, entry: ModelEntry) -> tuple[str, int]:
    """Stream every source into ``fd`` (closing it), hashing on the way; stop early if too big."""
    digest = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "wb") as out:
        for open_source in sources:
            with open_source() as src:
                while chunk := src.read(_CHUNK):
                    size += len(chunk)
                    if size > entry.size:  # no point writing a file we will reject
                        return digest.hexdigest(), size
                    digest.update(chunk)
                    out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest(), size


def file_opener(path: Path) -> Opener:
    """An :data:`Opener` for a local file."""
    return lambda: open(path, "rb")
