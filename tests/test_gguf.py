"""check_gguf on hand-built GGUF files: valid, truncated, corrupt, not GGUF at all."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpclassify.errors import ModelError
from lpclassify.models.gguf import GGML_TYPES, check_gguf

# --------------------------------------------------------------------------- GGUF writer

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?", U64: "<Q",
        I64: "<q", F64: "<d"}  # fmt: skip
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q4_K = 0, 1, 2, 12


def gstr(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv(key: str, vtype: int, value: object, etype: int | None = None) -> bytes:
    """Encode one metadata pair; arrays take ``etype`` and a list ``value``."""
    out = gstr(key) + struct.pack("<I", vtype)
    if vtype == STRING:
        return out + gstr(value)  # type: ignore[arg-type]
    if vtype == ARRAY:
        assert etype is not None
        items = list(value)  # type: ignore[call-overload]
        out += struct.pack("<IQ", etype, len(items))
        for item in items:
            out += gstr(item) if etype == STRING else struct.pack(_FMT[etype], item)
        return out
    return out + struct.pack(_FMT[vtype], value)


def nbytes(dims: tuple[int, ...], ggml_type: int) -> int:
    _, block, size = GGML_TYPES[ggml_type]
    n = 1
    for d in dims:
        n *= d
    return n // block * size


def make_gguf(
    kvs: list[bytes] | None = None,
    tensors: list[tuple[str, tuple[int, ...], int]] | None = None,
    *,
    version: int = 3,
    alignment: int = 32,
) -> bytes:
    """A complete GGUF file: header, metadata, tensor infos, aligned zero-filled data."""
    kvs = kvs if kvs is not None else [kv("general.architecture", STRING, "llama")]
    tensors = tensors if tensors is not None else [("tok_embd.weight", (64, 4), GGML_F32)]
    infos = b""
    offset = 0
    for name, dims, ggml_type in tensors:
        infos += gstr(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
        infos += struct.pack("<IQ", ggml_type, offset)
        size = nbytes(dims, ggml_type) if ggml_type in GGML_TYPES else 0
        offset += -(-size // alignment) * alignment
    header = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)) + b"".join(kvs) + infos
    header += b"\0" * (-len(header) % alignment)
    data = b""
    for _, dims, ggml_type in tensors:
        size = nbytes(dims, ggml_type) if ggml_type in GGML_TYPES else 0
        data += b"\0" * (-len(data) % alignment) + b"\x01" * size
    return header + data


def write(tmp_path: Path, data: bytes, name: str = "m.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- valid files


def test_valid_tiny_gguf(tmp_path: Path) -> None:
    kvs = [
        kv("general.architecture", STRING, "llama"),
        kv("general.name", STRING, "Tiny"),
        kv("llama.context_length", U32, 2048),
        kv("general.file_type", U32, 2),
        kv("tokenizer.ggml.model", STRING, "gpt2"),
        kv("tokenizer.ggml.tokens", ARRAY, ["a", "bb", "", "dddd"], STRING),
        kv("tokenizer.ggml.scores", ARRAY, [0.0, 1.0, 2.0, 3.0], F32),
    ]
    tensors = [("a", (64, 2), GGML_F32), ("b", (256, 3), GGML_Q4_K), ("c", (32,), GGML_Q4_0)]
    data = make_gguf(kvs, tensors)
    info = check_gguf(write(tmp_path, data))
    assert info.version == 3
    assert info.architecture == "llama"
    assert info.name == "Tiny"
    assert info.context_length == 2048
    assert info.tokenizer_model == "gpt2"
    assert info.file_type == 2
    assert info.n_tensors == 3 and info.n_kv == len(kvs)
    assert info.file_size == len(data) == info.required_size
    assert info.data_offset % 32 == 0
    assert info.metadata["tokenizer.ggml.tokens"] == "<array string[4]>"
    assert info.metadata["tokenizer.ggml.scores"] == "<array f32[4]>"


def test_every_value_type_parses(tmp_path: Path) -> None:
    kvs = [
        kv("u8", U8, 255), kv("i8", I8, -1), kv("u16", U16, 65535), kv("i16", I16, -2),
        kv("u32", U32, 7), kv("i32", I32, -7), kv("f32", F32, 0.5), kv("bool", BOOL, True),
        kv("str", STRING, "héllo"), kv("u64", U64, 2**40), kv("i64", I64, -(2**40)), kv("f64", F64, 0.25),
        kv("arr_u8", ARRAY, [1, 2, 3], U8), kv("arr_i64", ARRAY, [-1, 1], I64),
        kv("arr_bool", ARRAY, [True, False], BOOL), kv("arr_empty", ARRAY, [], STRING),
    ]  # fmt: skip
    meta = check_gguf(write(tmp_path, make_gguf(kvs))).metadata
    assert meta["u8"] == 255 and meta["i8"] == -1 and meta["u16"] == 65535 and meta["i16"] == -2
    assert meta["u32"] == 7 and meta["i32"] == -7 and meta["f32"] == 0.5 and meta["bool"] is True
    assert meta["str"] == "héllo" and meta["u64"] == 2**40 and meta["i64"] == -(2**40) and meta["f64"] == 0.25
    assert meta["arr_u8"] == "<array u8[3]>" and meta["arr_empty"] == "<array string[0]>"


def test_version_2_and_custom_alignment(tmp_path: Path) -> None:
    kvs = [kv("general.architecture", STRING, "llama"), kv("general.alignment", U32, 64)]
    data = make_gguf(kvs, [("a", (8,), GGML_F32), ("b", (8,), GGML_F16)], version=2, alignment=64)
    info = check_gguf(write(tmp_path, data))
    assert info.version == 2 and info.alignment == 64 and info.data_offset % 64 == 0
    assert info.required_size == len(data)


def test_large_vocabulary_and_long_strings_cross_buffer_boundaries(tmp_path: Path) -> None:
    # Token strings of varying length straddle the reader's 64 KiB refills; a 200 KB
    # string is read across refills and a 1.5 MB one is skipped rather than stored.
    tokens = [("t" * (i % 37)) for i in range(30_000)]
    kvs = [
        kv("general.architecture", STRING, "gemma3"),
        kv("tokenizer.ggml.tokens", ARRAY, tokens, STRING),
        kv("tokenizer.chat_template", STRING, "x" * 200_000),
        kv("huge", STRING, "y" * 1_500_000),
        kv("gemma3.context_length", U32, 32768),
    ]
    info = check_gguf(write(tmp_path, make_gguf(kvs)))
    assert info.metadata["tokenizer.ggml.tokens"] == "<array string[30000]>"
    assert len(info.metadata["tokenizer.chat_template"]) == 200_000  # type: ignore[arg-type]
    assert info.metadata["huge"] == "<long string>"
    assert info.context_length == 32768


def test_unknown_ggml_type_skips_size_check(tmp_path: Path) -> None:
    data = make_gguf(tensors=[("weird", (10,), 200)])
    assert check_gguf(write(tmp_path, data)).n_tensors == 1


def test_no_tensors(tmp_path: Path) -> None:
    info = check_gguf(write(tmp_path, make_gguf(tensors=[])))
    assert info.n_tensors == 0


# --------------------------------------------------------------------------- rejected files


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model file not found"):
        check_gguf(tmp_path / "nope.gguf")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="is a directory"):
        check_gguf(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"is not a GGUF file \(the file is empty\)"):
        check_gguf(write(tmp_path, b""))


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"<!DOCTYPE html><html>", "text/HTML"),
        (b"version https://git-lfs.github.com/spec/v1\n", "LFS"),
        (b"PK\x03\x04rest", "zip"),
        (b"\x00\x01\x02\x03\x04", "starts with"),
        (b"GG", "only 2 bytes"),
    ],
)
def test_not_gguf(tmp_path: Path, content: bytes, detail: str) -> None:
    with pytest.raises(ModelError, match="is not a GGUF file") as err:
        check_gguf(write(tmp_path, content))
    assert detail in str(err.value)
    assert "\n" not in str(err.value)


def test_unsupported_version(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="GGUF version 1, but only versions 2 and 3"):
        check_gguf(write(tmp_path, make_gguf(version=1)))


def test_big_endian(tmp_path: Path) -> None:
    data = b"GGUF" + struct.pack(">IQQ", 3, 0, 0)
    with pytest.raises(ModelError, match="big-endian"):
        check_gguf(write(tmp_path, data))


def test_truncated_tensor_data(tmp_path: Path) -> None:
    data = make_gguf(tensors=[("a", (64, 4), GGML_F32), ("b", (256, 2), GGML_Q4_K)])
    path = write(tmp_path, data[:-1])
    with pytest.raises(ModelError) as err:
        check_gguf(path)
    message = str(err.value)
    assert f"is truncated: expected at least {len(data)} bytes, found {len(data) - 1}" in message
    assert "lpclassify models pull" in message


def test_truncated_header(tmp_path: Path) -> None:
    kvs = [kv("general.architecture", STRING, "llama"), kv("tok", ARRAY, ["abc"] * 1000, STRING)]
    data = make_gguf(kvs)
    with pytest.raises(ModelError, match="is truncated"):
        check_gguf(write(tmp_path, data[:500]))


def test_header_only_no_data(tmp_path: Path) -> None:
    data = make_gguf(tensors=[("a", (1024,), GGML_F32)])
    header_len = len(data) - 4096
    with pytest.raises(ModelError, match=f"expected at least {len(data)} bytes, found {header_len}"):
        check_gguf(write(tmp_path, data[:header_len]))


@pytest.mark.parametrize("field", ["n_tensors", "n_kv"])
def test_absurd_count_is_corrupt_not_oom(tmp_path: Path, field: str) -> None:
    counts = {"n_tensors": 0, "n_kv": 0, field: 10**12}
    data = b"GGUF" + struct.pack("<IQQ", 3, counts["n_tensors"], counts["n_kv"]) + b"\0" * 64
    with pytest.raises(ModelError, match="corrupt header"):
        check_gguf(write(tmp_path, data))


def test_absurd_array_length_is_corrupt(tmp_path: Path) -> None:
    bad = gstr("tok") + struct.pack("<IIQ", ARRAY, STRING, 10**15)
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + bad + b"\0" * 64
    with pytest.raises(ModelError, match="corrupt header"):
        check_gguf(write(tmp_path, data))


def test_absurd_string_length_is_corrupt(tmp_path: Path) -> None:
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2**60) + b"\0" * 64
    with pytest.raises(ModelError, match="corrupt header"):
        check_gguf(write(tmp_path, data))


def test_unknown_value_type_is_corrupt(tmp_path: Path) -> None:
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + gstr("k") + struct.pack("<I", 99) + b"\0" * 64
    with pytest.raises(ModelError, match="unknown value type 99"):
        check_gguf(write(tmp_path, data))


def test_too_many_dims_is_corrupt(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="5 dimensions"):
        check_gguf(write(tmp_path, make_gguf(tensors=[("a", (1, 1, 1, 1, 1), GGML_F32)])))


def test_row_not_multiple_of_block_is_corrupt(tmp_path: Path) -> None:
    info = gstr("a") + struct.pack("<IQIQ", 1, 33, GGML_Q4_0, 0)
    data = b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + info
    data += b"\0" * (-len(data) % 32) + b"\0" * 64
    with pytest.raises(ModelError, match="not a multiple of the Q4_0 block size"):
        check_gguf(write(tmp_path, data))


def test_bad_alignment_is_corrupt(tmp_path: Path) -> None:
    kvs = [kv("general.alignment", U32, 48)]
    with pytest.raises(ModelError, match="not a power of two"):
        check_gguf(write(tmp_path, make_gguf(kvs, tensors=[])))


# --------------------------------------------------------------------------- fuzzing

_SAMPLE = make_gguf(
    [kv("general.architecture", STRING, "llama"), kv("tok", ARRAY, ["a", "bc", "def"], STRING),
     kv("s", ARRAY, [1.0, 2.0], F32), kv("llama.context_length", U32, 128)],
    [("a", (32, 2), GGML_F16), ("b", (32,), GGML_Q4_0)],
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=len(_SAMPLE) - 1))
def test_any_truncation_is_a_model_error(tmp_path: Path, cut: int) -> None:
    with pytest.raises(ModelError):
        check_gguf(write(tmp_path, _SAMPLE[:cut]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, len(_SAMPLE) - 1), st.integers(0, 255)), min_size=1, max_size=4))
def test_corruption_never_crashes(tmp_path: Path, flips: list[tuple[int, int]]) -> None:
    data = bytearray(_SAMPLE)
    for index, value in flips:
        data[index] = value
    try:
        check_gguf(write(tmp_path, bytes(data)))
    except ModelError as exc:
        assert "\n" not in str(exc)
