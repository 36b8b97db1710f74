"""Writing files so that a reader never sees half of one: one atomic write for the whole package.

:func:`atomic_output` writes through a temporary file in the same directory and renames it
over the target on success (``os.replace`` is atomic on POSIX and Windows), so a crash or
Ctrl-C leaves the old file or none, never a torn one. :func:`write_json_atomic` is the same
for a JSON document (run metadata, caches).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from ..errors import InputError


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, newline: str | None = None) -> Iterator[TextIO]:
    """Write a text file through a temporary file next to it, renamed over ``path`` on success.

    If the body raises (including ``KeyboardInterrupt``), the temporary file is removed and
    ``path`` is left as it was: an interrupted run never leaves a file that looks complete.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise InputError(f"cannot write {target}: it is a directory")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except FileNotFoundError:
        raise InputError(f"cannot write {target}: the directory {directory} does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as stream:
            yield stream
            try:
                stream.flush()
                os.fsync(stream.fileno())
            except OSError as exc:
                raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
        try:
            _chmod_like_new_file(tmp)
            os.replace(tmp, target)
        except OSError as exc:
            raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _chmod_like_new_file(path: Path) -> None:
    """mkstemp creates 0600; give the result the permissions ``open()`` would have."""
    umask = os.umask(0)
    os.umask(umask)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~umask)


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when two paths name the same existing file."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def write_json_atomic(path: str | os.PathLike[str], document: Any, *, indent: int | None = 1) -> None:
    """Write ``document`` as JSON (and a final newline) to ``path`` atomically; errors as :class:`InputError`."""
    with atomic_output(path) as stream:
        stream.write(json.dumps(document, indent=indent) + "\n")
