"""Cheap structural validation of GGUF files, before llama.cpp ever sees them.

llama.cpp memory-maps a model and trusts its header: a truncated download makes it read
past the end of the mapping and the whole process dies with SIGBUS instead of raising.
:func:`check_gguf` parses the header (metadata and tensor table, never the tensor data),
works out where the last tensor's bytes end and compares that with the file size, so a
bad file becomes a one-line :class:`~lpclassify.errors.ModelError` instead of a crash.

Array values are skipped, except arrays of strings whose lengths have to be walked;
the reading itself, bounded by the file size, is :mod:`~lpclassify.models.gguf_reader`'s.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import ModelError
from .gguf_reader import BoundedReader, Corrupt, Truncated

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
GGML_MAX_DIMS = 4  # llama.cpp refuses tensors with more dimensions

# GGUF metadata value types -> (struct format, size) for the fixed-size ones.
_T_STRING = 8
_T_ARRAY = 9
_SCALAR_FORMATS: dict[int, str] = {
    0: "<B",  # UINT8
    1: "<b",  # INT8
    2: "<H",  # UINT16
    3: "<h",  # INT16
    4: "<I",  # UINT32
    5: "<i",  # INT32
    6: "<f",  # FLOAT32
    7: "<?",  # BOOL
    10: "<Q",  # UINT64
    11: "<q",  # INT64
    12: "<d",  # FLOAT64
}
_SCALAR_SIZES = {t: struct.calcsize(f) for t, f in _SCALAR_FORMATS.items()}

# ggml tensor types: id -> (name, elements per block, bytes per block). Mirrors
# GGML_QUANT_SIZES in gguf-py. Where sources disagree (Q8_1) the smaller size is used:
# underestimating only weakens the truncation check, overestimating would reject good
# files. Ids that were removed from ggml (4, 5, 31-33, 36-38) are left out on purpose,
# and any id not listed simply skips the size check for that tensor.
_QK_K = 256
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 2 + 16),
    3: ("Q4_1", 32, 2 + 2 + 16),
    6: ("Q5_0", 32, 2 + 4 + 16),
    7: ("Q5_1", 32, 2 + 2 + 4 + 16),
    8: ("Q8_0", 32, 2 + 32),
    9: ("Q8_1", 32, 2 + 2 + 32),
    10: ("Q2_K", _QK_K, 2 + 2 + _QK_K // 16 + _QK_K // 4),
    11: ("Q3_K", _QK_K, 2 + _QK_K // 4 + _QK_K // 8 + 12),
    12: ("Q4_K", _QK_K, 2 + 2 + _QK_K // 2 + 12),
    13: ("Q5_K", _QK_K, 2 + 2 + _QK_K // 2 + _QK_K // 8 + 12),
    14: ("Q6_K", _QK_K, 2 + _QK_K // 2 + _QK_K // 4 + _QK_K // 16),
    15: ("Q8_K", _QK_K, 4 + _QK_K + _QK_K // 8),
    16: ("IQ2_XXS", _QK_K, 2 + _QK_K // 4),
    17: ("IQ2_XS", _QK_K, 2 + _QK_K // 4 + _QK_K // 32),
    18: ("IQ3_XXS", _QK_K, 2 + _QK_K // 4 + _QK_K // 8),
    19: ("IQ1_S", _QK_K, 2 + _QK_K // 8 + _QK_K // 16),
    20: ("IQ4_NL", 32, 2 + 16),
    21: ("IQ3_S", _QK_K, 2 + _QK_K // 4 + _QK_K // 8 + _QK_K // 32 + 4),
    22: ("IQ2_S", _QK_K, 2 + _QK_K // 4 + _QK_K // 16),
    23: ("IQ4_XS", _QK_K, 2 + 2 + _QK_K // 2 + _QK_K // 64),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", _QK_K, _QK_K // 8 + _QK_K // 16 + _QK_K // 32),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", _QK_K, 2 + 4 * 13),
    35: ("TQ2_0", _QK_K, 2 + 64),
    39: ("MXFP4", 32, 1 + 16),
}

# Sanity caps. Real files are far below these; anything above is a corrupt header.
_MAX_KEY_BYTES = 65_536
_MAX_TENSOR_NAME_BYTES = 65_536
_MAX_KEPT_STRING_BYTES = 1 << 20  # longer string values are skipped, not stored
_MAX_ARRAY_ITEMS = 1 << 32
_MAX_TENSORS = 1 << 20
_MAX_KV = 1 << 20
_MAX_INT64 = (1 << 63) - 1

_PULL_HINT = "download it again (`lpclassify models pull NAME` for registry models)"


@dataclass(frozen=True)
class GGUFInfo:
    """What :func:`check_gguf` learned from a file's header.

    ``metadata`` holds the scalar and string metadata values (arrays are summarised as
    ``"<array TYPE[N]>"``); ``required_size`` is where the last tensor's data ends.
    """

    path: Path
    version: int
    file_size: int
    n_tensors: int
    n_kv: int
    alignment: int
    data_offset: int
    required_size: int
    architecture: str | None = None
    name: str | None = None
    context_length: int | None = None
    tokenizer_model: str | None = None
    file_type: int | None = None
    metadata: Mapping[str, object] = field(default_factory=dict, repr=False)


def check_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    """Validate that ``path`` is a complete, parseable GGUF v2/v3 file and describe it.

    Raises :class:`ModelError` (one line, with a fix) if the file is missing, not a
    regular file, unreadable, not GGUF, of an unsupported version or byte order, has a
    corrupt header, or is shorter than its tensor table says it must be.
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ModelError(f"model file not found: {p}") from None
    except OSError as exc:
        raise ModelError(f"cannot read model file {p}: {exc.strerror or exc}") from None
    if p.is_dir():
        raise ModelError(f"{p} is a directory, not a GGUF model file; pass the path of a .gguf file")
    try:
        with open(p, "rb") as fh:
            return _parse(fh, p, st.st_size)
    except ModelError:
        raise
    except OSError as exc:
        raise ModelError(f"cannot read model file {p}: {exc.strerror or exc}") from None


def _parse(fh: BinaryIO, path: Path, file_size: int) -> GGUFInfo:
    """Parse the header of an open file; translate internal failures into ModelError."""
    magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise ModelError(f"{path} is not a GGUF file ({_describe_magic(magic, file_size)}); pass a .gguf model file")
    reader = BoundedReader(fh, file_size, start=4)
    try:
        return _parse_after_magic(reader, path)
    except Truncated as exc:
        raise ModelError(
            f"{path} is truncated: expected at least {exc.needed} bytes, found {file_size}; {_PULL_HINT}"
        ) from None
    except Corrupt as exc:
        raise ModelError(f"{path} has a corrupt header ({exc}); {_PULL_HINT}") from None


def _describe_magic(magic: bytes, file_size: int) -> str:
    """Say what the first bytes look like, for the 'not a GGUF file' message."""
    if file_size == 0:
        return "the file is empty"
    if len(magic) < 4:
        return f"only {file_size} bytes long"
    if magic.startswith(b"PK"):
        return "it looks like a zip archive"
    if magic[:1] in (b"<", b"{", b"#") or magic.startswith(b"ver"):
        return "it looks like a text/HTML/LFS-pointer file, not model weights"
    return f"it starts with {magic!r} instead of b'GGUF'"


def _parse_after_magic(reader: BoundedReader, path: Path) -> GGUFInfo:
    """Parse version, metadata and tensor infos; compute the size the file must have."""
    version = reader.u32()
    if version not in SUPPORTED_VERSIONS:
        if version & 0xFFFF == 0 and (version >> 24) in SUPPORTED_VERSIONS:
            raise ModelError(f"{path} is a big-endian GGUF file, which llama.cpp cannot load on this machine")
        raise ModelError(
            f"{path} uses GGUF version {version}, but only versions 2 and 3 are supported; "
            "convert it again with a recent llama.cpp"
        )
    # Minimum encoded sizes turn counts into byte bounds: a tensor info is at least
    # 8+4+4+8 bytes (name length, n_dims, type, offset), a key/value at least 8+4+1.
    n_tensors = reader.count("tensor count", 24, _MAX_TENSORS)
    n_kv = reader.count("metadata count", 13, _MAX_KV)

    metadata = _read_metadata(reader, n_kv)
    alignment = DEFAULT_ALIGNMENT
    if "general.alignment" in metadata:
        alignment = metadata["general.alignment"]
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise Corrupt(f"general.alignment {alignment!r} is not a power of two")

    tensors = _read_tensor_infos(reader, n_tensors)
    header_end = reader.tell()
    data_offset = -(-header_end // alignment) * alignment
    required = header_end
    for name, dims, ggml_type, offset in tensors:
        if offset % alignment:
            raise Corrupt(f"tensor {name!r} offset {offset} is not a multiple of the alignment {alignment}")
        nbytes = _tensor_nbytes(name, dims, ggml_type)
        end = data_offset + offset + (nbytes or 0)
        required = max(required, end)
    if required > reader.file_size:
        raise Truncated(required)

    arch = _str_or_none(metadata.get("general.architecture"))
    ctx = metadata.get(f"{arch}.context_length") if arch else None
    file_type = metadata.get("general.file_type")
    return GGUFInfo(
        path=path,
        version=version,
        file_size=reader.file_size,
        n_tensors=n_tensors,
        n_kv=n_kv,
        alignment=alignment,
        data_offset=data_offset,
        required_size=required,
        architecture=arch,
        name=_str_or_none(metadata.get("general.name")),
        context_length=ctx if isinstance(ctx, int) and not isinstance(ctx, bool) else None,
        tokenizer_model=_str_or_none(metadata.get("tokenizer.ggml.model")),
        file_type=file_type if isinstance(file_type, int) and not isinstance(file_type, bool) else None,
        metadata=metadata,
    )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _read_metadata(reader: BoundedReader, n_kv: int) -> dict[str, object]:
    """Read ``n_kv`` key/value pairs; keep scalars and short strings, summarise arrays."""
    metadata: dict[str, object] = {}
    for _ in range(n_kv):
        key = reader.string("metadata key", _MAX_KEY_BYTES)
        if key is None:
            raise Corrupt("metadata key longer than 64 KiB")
        vtype = reader.u32()
        metadata[key] = _read_value(reader, key, vtype)
    return metadata


def _read_value(reader: BoundedReader, key: str, vtype: int) -> object:
    """Read (or skip) one metadata value of GGUF type ``vtype``."""
    if vtype in _SCALAR_FORMATS:
        return reader.unpack(_SCALAR_FORMATS[vtype], _SCALAR_SIZES[vtype])[0]
    if vtype == _T_STRING:
        value = reader.string(f"value of {key}", _MAX_KEPT_STRING_BYTES)
        return value if value is not None else "<long string>"
    if vtype == _T_ARRAY:
        etype = reader.u32()
        if etype in _SCALAR_SIZES:
            count = reader.count(f"length of array {key}", _SCALAR_SIZES[etype], _MAX_ARRAY_ITEMS)
            reader.skip(count * _SCALAR_SIZES[etype])
            return f"<array {_type_name(etype)}[{count}]>"
        if etype == _T_STRING:
            count = reader.count(f"length of array {key}", 8, _MAX_ARRAY_ITEMS)
            reader.skip_string_array(count)
            return f"<array string[{count}]>"
        # Nested arrays are legal in the spec but no model uses them and llama.cpp
        # rejects them; treat them (and unknown element types) as corruption.
        raise Corrupt(f"metadata {key!r} has an unsupported array element type {etype}")
    raise Corrupt(f"metadata {key!r} has an unknown value type {vtype}")


_VALUE_TYPE_NAMES = ("u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64")


def _type_name(vtype: int) -> str:
    return _VALUE_TYPE_NAMES[vtype] if 0 <= vtype < len(_VALUE_TYPE_NAMES) else str(vtype)


def _read_tensor_infos(reader: BoundedReader, n_tensors: int) -> list[tuple[str, tuple[int, ...], int, int]]:
    """Read the tensor table: (name, dims, ggml type, offset relative to the data start)."""
    tensors = []
    for index in range(n_tensors):
        name = reader.string("tensor name", _MAX_TENSOR_NAME_BYTES)
        if name is None:
            raise Corrupt(f"tensor #{index} has a name longer than 64 KiB")
        n_dims = reader.u32()
        if n_dims > GGML_MAX_DIMS:
            raise Corrupt(f"tensor {name!r} has {n_dims} dimensions (at most {GGML_MAX_DIMS})")
        dims = reader.unpack(f"<{n_dims}Q", 8 * n_dims) if n_dims else ()
        ggml_type, offset = reader.unpack("<IQ", 12)
        tensors.append((name, tuple(dims), ggml_type, offset))
    return tensors


def _tensor_nbytes(name: str, dims: tuple[int, ...], ggml_type: int) -> int | None:
    """Bytes of tensor data, or None when the type is unknown to this table."""
    n_elements = 1
    for d in dims:
        if d > _MAX_INT64:
            raise Corrupt(f"tensor {name!r} has dimension {d}")
        n_elements *= d
        if n_elements > _MAX_INT64:
            raise Corrupt(f"tensor {name!r} has too many elements")
    spec = GGML_TYPES.get(ggml_type)
    if spec is None:
        return None
    type_name, block, type_size = spec
    if dims and dims[0] % block:
        raise Corrupt(f"tensor {name!r} row of {dims[0]} is not a multiple of the {type_name} block size {block}")
    return n_elements // block * type_size
