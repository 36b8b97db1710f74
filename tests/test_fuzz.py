"""Property tests: whatever the config loader and the input readers are fed, only lpclassify's own
errors come out (no KeyError, TypeError, RecursionError... and so no traceback in the CLI)."""

from __future__ import annotations

import contextlib
import gzip
import io
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, find, given, settings
from hypothesis import strategies as st

from lpclassify.config import Config, load_config, parse_config
from lpclassify.errors import ConfigError, InputError, LpclassifyError
from lpclassify.records import INPUT_FORMATS, InputFile, InputRecord, InputRecordError, RecordReader

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- configs

KEYS = ["name", "model", "prompt", "labels", "description", "completions", "threshold", "scoring", "normalize",
        "aggregate", "calibration", "content_free", "calibration_file", "decision", "mode", "top_k", "multi",
        "yes", "no", "runtime", "n_ctx", "batch_size", "threads", "n_gpu_layers", "long_inputs",
        "truncate_side", "empty_text", "positive", "negative", "normalise"]
VALUES = ["sum", "mean", "chars", "logsumexp", "max", "none", "contextual", "pmi", "fitted", "batch", "domain",
          "single", "multi", "truncate", "chunk", "head", "tail", "middle", "error", "abstain", "default",
          "smollm2-135m", "'Review: {text}\\nSentiment:'", "'{text}'", "'{labels} {text}'", "'{label}'", "' yes'",
          "0", "1", "-1", "0.5", "1e309", ".nan", ".inf", "-.inf", "null", "~", "true", "no", "yes", "[]", "{}",
          "''", "'{'", "2001-12-14", "!!binary aGVsbG8=", "!!python/object:os.system x", "&a x", "*a", "*b",
          "\"\\x00\"", "99999999999999999999999", "[a, b]", "{a: 1}", "'é 😀'"]
FRAGMENTS = st.one_of(
    st.sampled_from(KEYS).map(lambda k: f"{k}:"),
    st.sampled_from(VALUES).map(lambda v: f" {v}"),
    st.sampled_from(["\n", "\n  ", "\n    ", "\n- ", "\n  - ", " - ", ": ", "[", "]", "{", "}", ", ", "? ",
                     "|", "|-", ">", "#", "'", '"', "---", "...", "\t", "%YAML 1.2", "<<: *a", "!!str", "\\"]),
    st.text(max_size=6),
)
YAMLISH = st.lists(FRAGMENTS, max_size=40).map("".join)

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
                    st.sampled_from(VALUES), st.binary(max_size=4))
ANYTHING = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6), st.integers(), st.none()), inner,
                    max_size=4)), max_leaves=20)
# Close to valid, so that the fuzzing reaches the deeper checks too.
NEAR_VALID = st.fixed_dictionaries(
    {"prompt": st.one_of(st.just("Review: {text}\nSentiment:"), st.just("{labels}\n{text}"), ANYTHING),
     "labels": st.one_of(st.just(["positive", "negative"]),
                         st.dictionaries(st.text(max_size=8), st.one_of(
                             st.none(), ANYTHING,
                             st.fixed_dictionaries({}, optional={"completions": ANYTHING, "threshold": ANYTHING,
                                                                 "description": ANYTHING})), max_size=3),
                         ANYTHING)},
    optional={section: st.one_of(ANYTHING, st.dictionaries(st.sampled_from(KEYS), ANYTHING, max_size=4))
              for section in ("scoring", "decision", "runtime", "name", "model", "description")},
)


def config_outcome(load: Any, *args: Any) -> None:
    try:
        config = load(*args)
    except ConfigError:
        return
    assert isinstance(config, Config)


@FUZZ
@given(YAMLISH)
@example("labels: [a, b]\nprompt: '{text}'\nlabels: [c]\n")  # a duplicate key
@example("prompt: " + "[" * 5000)  # nested past the parser's recursion limit
@example("{1: 2, [a]: b}")  # keys that are not strings
@example("prompt: '{text}'\nlabels: {1: x, 2: y}\n")
@example("prompt: '{text}'\nlabels: [a, b]\nruntime: {n_ctx: .nan}\n")
@example("prompt: '{text}'\nlabels: [a, b]\ndecision: {threshold: .inf, top_k: 1e400}\n")
@example("prompt: '{text}'\nlabels: [a, b]\nscoring: {content_free: [!!binary aGVsbG8=]}\n")
def test_config_loader_raises_only_config_errors_on_yamlish_text(document: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_text(document, encoding="utf-8", errors="surrogatepass")
        config_outcome(load_config, path)


@FUZZ
@given(st.binary(max_size=200))
def test_config_loader_raises_only_config_errors_on_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_bytes(data)
        config_outcome(load_config, path)


@FUZZ
@given(st.one_of(ANYTHING, NEAR_VALID))
def test_config_parser_raises_only_config_errors_on_any_structure(data: Any) -> None:
    config_outcome(parse_config, data)


# --------------------------------------------------------------------------- input files

PIECES = st.one_of(
    st.binary(max_size=8),
    st.sampled_from([b"\n", b"\r\n", b"\r", b",", b"\t", b'"', b'""', b"{", b"}", b"[", b"]", b":", b'"text"',
                     b'{"text": "a"}', b'{"text": 1}', b'{"id": 2}', b"text,id\n", b"id\ttext\n", b"\xef\xbb\xbf",
                     b"\xff", b"\xc3", b"\x00", b"null", b"1e999", b"9" * 5000, b"[" * 3000, b"\\u00", b"\\ud800"]),
)
BYTES = st.lists(PIECES, max_size=30).map(b"".join)


def read_all(reader_factory: Any) -> None:
    """Every way the CLI iterates a reader: items(), and both error policies."""
    items = list(reader_factory("skip").items())
    assert all(isinstance(item, (InputRecord, InputRecordError)) for item in items)
    skipping = reader_factory("skip")
    records = list(skipping)
    assert len(records) + len(skipping.skipped) == len(items)
    try:
        assert list(reader_factory("fail")) == records
    except InputRecordError as error:
        assert error.line >= 1 and "\n" not in str(error)


@FUZZ
@given(BYTES, st.sampled_from(INPUT_FORMATS))
@example(b"[" * 100_000, "jsonl")  # json's recursion limit
@example(b'{"text": ' + b"1" * 5000 + b"}", "jsonl")  # int() digit limit (a ValueError, not a JSONDecodeError)
@example(b'text\n"unterminated\n', "csv")
@example(b"text,text\na,b\n", "csv")
@example(b"\xff\xfe\n", "txt")
@example(b"text\n\xff\n\"a\nb\xff\"\n", "csv")
def test_input_readers_raise_only_input_errors(data: bytes, fmt: str) -> None:
    with contextlib.suppress(InputError):  # a file-level problem (a CSV header without the text column)
        read_all(lambda errors: RecordReader(io.BytesIO(data), fmt, source="in", errors=errors))


@FUZZ
@given(st.one_of(BYTES, BYTES.map(gzip.compress), BYTES.map(lambda b: gzip.compress(b)[: len(b) // 2 + 5])),
       st.sampled_from(INPUT_FORMATS))
def test_gzipped_input_files_raise_only_input_errors(data: bytes, fmt: str) -> None:
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as files:
        path = Path(tmp) / f"in.{fmt}.gz"
        path.write_bytes(data)

        def reader(errors: str) -> RecordReader:
            infile = files.enter_context(InputFile(path))
            return RecordReader(infile.stream, fmt, source=str(path), errors=errors)

        try:
            read_all(reader)
        except LpclassifyError as exc:
            assert isinstance(exc, InputError)


def parses(data: Any) -> bool:
    try:
        parse_config(data)
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("wanted", [True, False], ids=["valid", "invalid"])
def test_the_config_strategy_reaches_valid_and_invalid_configs(wanted: bool) -> None:
    """The strategy itself: it must draw configs that parse (so the deeper checks run) and configs that don't.

    ``find`` searches the strategy and raises NoSuchExample if no draw satisfies the condition.
    """
    found = find(NEAR_VALID, lambda data: parses(data) is wanted, settings=settings(max_examples=500, database=None))
    assert parses(found) is wanted
