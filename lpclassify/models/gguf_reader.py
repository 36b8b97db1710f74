"""A bounded, forward-only little-endian reader for untrusted binary headers.

Used by :mod:`lpclassify.models.gguf`. It reads through one small buffer (so the
~260k-entry token arrays of modern vocabularies stay cheap) and treats the file size
as a hard bound: every count read from the file is checked against the bytes that are
left before it is used, so a corrupt count cannot make us allocate or loop unboundedly.
Failures are two exceptions that the caller turns into user-facing messages:
:class:`Truncated` (the file ends too early) and :class:`Corrupt` (an impossible value).
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

MAX_STRING_BYTES = 1 << 32  # no real string comes close; above this a length is corrupt
_CHUNK = 1 << 16


class Truncated(Exception):
    """The header itself runs past the end of the file; carries the byte count needed."""

    def __init__(self, needed: int) -> None:
        super().__init__(needed)
        self.needed = needed


class Corrupt(Exception):
    """The header contains an impossible value; the message says which."""


class BoundedReader:
    """Forward-only little-endian reader over a binary file, with its own buffer.

    Reading through one bytes buffer with ``struct.unpack_from`` keeps the per-field
    cost low, which matters for the ~260k-entry token arrays of modern vocabularies.
    """

    def __init__(self, fh: BinaryIO, file_size: int, start: int = 0) -> None:
        self._fh = fh
        self.file_size = file_size
        self._buf = b""
        self._pos = 0  # position inside _buf
        self._base = start  # file offset of _buf[0]
        fh.seek(start)

    def tell(self) -> int:
        """Current absolute file offset."""
        return self._base + self._pos

    def _need(self, n: int) -> None:
        """Make sure ``n`` bytes are available in the buffer at the current position."""
        if len(self._buf) - self._pos >= n:
            return
        if self.tell() + n > self.file_size:
            raise Truncated(self.tell() + n)
        rest = self._buf[self._pos :]
        more = self._fh.read(max(n - len(rest), _CHUNK))
        self._base += self._pos
        self._buf = rest + more
        self._pos = 0
        if len(self._buf) < n:  # file shrank under us, or a short read at EOF
            raise Truncated(self.tell() + n)

    def unpack(self, fmt: str, size: int) -> tuple[Any, ...]:
        """Read one struct-packed record of ``size`` bytes."""
        self._need(size)
        values = struct.unpack_from(fmt, self._buf, self._pos)
        self._pos += size
        return values

    def u32(self) -> int:
        return self.unpack("<I", 4)[0]

    def u64(self) -> int:
        return self.unpack("<Q", 8)[0]

    def skip(self, n: int) -> None:
        """Skip ``n`` bytes; past the end of the file is a truncation."""
        if n <= len(self._buf) - self._pos:
            self._pos += n
            return
        target = self.tell() + n
        if target > self.file_size:
            raise Truncated(target)
        self._fh.seek(target)
        self._buf = b""
        self._pos = 0
        self._base = target

    def read_bytes(self, n: int) -> bytes:
        self._need(n)
        data = self._buf[self._pos : self._pos + n]
        self._pos += n
        return data

    def count(self, what: str, elem_size: int, cap: int) -> int:
        """Read a uint64 count of ``elem_size``-byte items.

        A count above ``cap`` is corruption (no real file comes close); a plausible count
        whose items cannot fit in the rest of the file means the file was cut short.
        """
        n = self.u64()
        if n > cap:
            raise Corrupt(f"{what} is {n}")
        needed = self.tell() + n * elem_size
        if needed > self.file_size:
            raise Truncated(needed)
        return n

    def string(self, what: str, keep_max: int) -> str | None:
        """Read a GGUF string; return None (after skipping it) if longer than ``keep_max``."""
        n = self.count(f"{what} length", 1, MAX_STRING_BYTES)
        if n > keep_max:
            self.skip(n)
            return None
        return self.read_bytes(n).decode("utf-8", errors="replace")

    def skip_string_array(self, count: int) -> None:
        """Walk ``count`` length-prefixed strings without decoding them."""
        unpack_from = struct.unpack_from
        for _ in range(count):
            if len(self._buf) - self._pos < 8:
                self._need(8)
            (n,) = unpack_from("<Q", self._buf, self._pos)
            self._pos += 8
            if n > MAX_STRING_BYTES:
                raise Corrupt(f"string length is {n}")
            if n <= len(self._buf) - self._pos:
                self._pos += n
            else:
                self.skip(n)
