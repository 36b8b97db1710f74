"""Input readers, output writers and atomic output files (no model needed)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from pathlib import Path

import pytest

from lpclassify.errors import InputError
from lpclassify.records.files import atomic_output, same_file, write_json_atomic
from lpclassify.records.labelled import read_labeled
from lpclassify.records.readers import (
    InputFile,
    InputRecord,
    InputRecordError,
    RecordReader,
    input_format_for,
    text_records,
)
from lpclassify.records.writers import (
    CsvWriter,
    JsonlWriter,
    TableWriter,
    json_safe,
    make_writer,
    merge_record,
    output_format_for,
)


def read(data: bytes, fmt: str, **kwargs: object) -> list[InputRecord]:
    return list(RecordReader(io.BytesIO(data), fmt, source="in", **kwargs))  # type: ignore[arg-type]


def error_of(data: bytes, fmt: str, **kwargs: object) -> InputRecordError:
    with pytest.raises(InputRecordError) as info:
        read(data, fmt, **kwargs)
    return info.value


# --------------------------------------------------------------------------- JSON Lines


def test_jsonl_records_keep_every_field_and_their_line_numbers() -> None:
    data = b'{"id": 1, "text": "Great", "meta": {"a": [1, 2]}}\n\n  \n{"text": "Bad", "id": "x"}\n'
    records = read(data, "jsonl")
    assert records == [
        InputRecord(1, {"id": 1, "text": "Great", "meta": {"a": [1, 2]}}, "Great"),
        InputRecord(4, {"text": "Bad", "id": "x"}, "Bad"),
    ]
    assert records[0].line == 1 and records[0].text == "Great"  # a named tuple: (line, fields, text)


def test_jsonl_text_field_bom_and_missing_final_newline() -> None:
    records = read(b'\xef\xbb\xbf{"body": "caf\xc3\xa9", "n": 2}', "jsonl", text_field="body")
    assert records == [InputRecord(1, {"body": "café", "n": 2}, "café")]


@pytest.mark.parametrize(("data", "line", "words"), [
    (b'{"text": "ok"}\n{"text": "unterminated\n', 2, ["invalid JSON"]),
    (b'{"text": "ok"}\n[1, 2]\n', 2, ["expected a JSON object", "array"]),
    (b'{"text": "ok"}\n{"body": "x", "id": 3}\n', 2, ["'text'", "--text-field", "'body'"]),
    (b'{"text": 5}\n', 1, ["'text'", "a number", "string"]),
    (b'{"text": null}\n', 1, ["null"]),
    (b'{"text": "ok"}\n{"text": "caf\xe9"}\n', 2, ["UTF-8", "0xe9"]),
])
def test_jsonl_errors_name_file_and_line(data: bytes, line: int, words: list[str]) -> None:
    error = error_of(data, "jsonl")
    assert isinstance(error, InputError)
    assert error.line == line and error.source == "in"
    message = str(error)
    assert message.startswith(f"in:{line}: ")
    assert "\n" not in message
    for word in words:
        assert word in message


def test_skip_policy_collects_bad_records() -> None:
    reader = RecordReader(io.BytesIO(b'{"text": "a"}\nnot json\n{"x": 1}\n{"text": "b"}\n'), "jsonl", source="s",
                          errors="skip")
    assert [r.text for r in reader] == ["a", "b"]
    assert [e.line for e in reader.skipped] == [2, 3]


# --------------------------------------------------------------------------- CSV / TSV


def test_csv_columns_kept_blank_lines_skipped_multiline_fields_keep_their_start_line() -> None:
    data = b'id,body,label\r\n1,Loved it,pos\r\n\r\n2,"Awful,\r\nreally",neg\r\n3,"say ""hi""",pos\r\n'
    records = read(data, "csv", text_field="body")
    assert [(r.line, r.text) for r in records] == [(2, "Loved it"), (4, "Awful,\r\nreally"), (6, 'say "hi"')]
    assert records[0].fields == {"id": "1", "body": "Loved it", "label": "pos"}


def test_tsv() -> None:
    records = read(b"text\tid\nhello, world\t7\n", "tsv")
    assert records == [InputRecord(2, {"text": "hello, world", "id": "7"}, "hello, world")]


def test_csv_missing_text_column_is_reported_on_the_header_line() -> None:
    error = error_of(b"id,body\n1,x\n", "csv")
    assert error.line == 1
    assert "'text'" in str(error) and "--text-field" in str(error) and "'body'" in str(error)


@pytest.mark.parametrize(("data", "line", "word"), [
    (b"id,text\n1,a\n2,b,c\n", 3, "expected 2 columns"),
    (b'text\nok\n"a"b\n', 3, "malformed CSV"),
    (b"text,text\na,b\n", 1, "twice"),
    (b"id,text\n1,ok\n2,caf\xe9\n", 3, "UTF-8"),
])
def test_csv_errors_name_the_line(data: bytes, line: int, word: str) -> None:
    error = error_of(data, "csv")
    assert error.line == line, str(error)
    assert word in str(error)


def test_csv_long_fields_are_fine() -> None:
    text = "x" * 300_000
    assert read(f"text\n{text}\n".encode(), "csv")[0].text == text


# --------------------------------------------------------------------------- plain text


def test_txt_one_text_per_line_blank_lines_are_skipped_and_counted() -> None:
    reader = RecordReader(io.BytesIO(b"great\r\n\r\n  spaced  \n \t \nlast"), "txt", source="in.txt")
    records = list(reader)
    assert [(r.line, r.text) for r in records] == [(1, "great"), (3, "  spaced  "), (5, "last")]
    assert records[0].fields == {"text": "great"}
    assert reader.blank_lines == 2


def test_txt_bad_utf8_names_the_line() -> None:
    error = error_of(b"ok\nfine\n\xff\xfe\n", "txt")
    assert error.line == 3 and "UTF-8" in str(error)


def test_text_records_number_the_arguments() -> None:
    assert list(text_records(["a", "b"])) == [InputRecord(1, {"text": "a"}, "a"), InputRecord(2, {"text": "b"}, "b")]


# --------------------------------------------------------------------------- files and formats


@pytest.mark.parametrize(("name", "fmt"), [("a.jsonl", "jsonl"), ("a.NDJSON", "jsonl"), ("b.csv", "csv"),
                                           ("b.tsv", "tsv"), ("c.txt", "txt"), ("d.jsonl.gz", "jsonl")])
def test_input_format_from_the_file_name(name: str, fmt: str) -> None:
    assert input_format_for(name) == fmt


@pytest.mark.parametrize("name", ["data.json", "data.avro", "noext"])
def test_unknown_input_format_suggests_the_option(name: str) -> None:
    with pytest.raises(InputError, match="--input-format"):
        input_format_for(name)


def test_output_format_from_the_file_name() -> None:
    assert output_format_for("x.csv") == "csv"
    assert output_format_for("x.jsonl") == "jsonl"
    with pytest.raises(InputError, match="-f"):
        output_format_for("x.out")


def test_input_file_errors_and_gzip(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        InputFile(tmp_path / "missing.jsonl")
    with pytest.raises(InputError, match="directory"):
        InputFile(tmp_path)
    path = tmp_path / "in.jsonl.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b'{"text": "zipped"}\n')
    with InputFile(path) as infile:
        assert [r.text for r in RecordReader(infile.stream, "jsonl", source=str(path))] == ["zipped"]
        assert infile.position() == infile.size > 0


def test_truncated_gzip_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "in.txt.gz"
    path.write_bytes(gzip.compress(b"a\n" * 1000)[:30])
    with InputFile(path) as infile, pytest.raises(InputError, match="cannot read"):
        list(RecordReader(infile.stream, "txt", source=str(path)))


# --------------------------------------------------------------------------- writers

PREDICTION = {"label": "pos", "labels": ["pos"], "probabilities": {"pos": 0.75, "neg": 0.25}, "abstained": False,
              "reason": None}


def test_merge_keeps_input_fields_and_renames_clashes() -> None:
    merged, renamed = merge_record({"id": 1, "label": "gold", "input_label": "x"}, PREDICTION)
    assert renamed == ["label"]
    assert merged["id"] == 1 and merged["input_label"] == "x" and merged["input_input_label"] == "gold"
    assert merged["label"] == "pos"
    assert list(merged)[:3] == ["id", "input_input_label", "input_label"]


def test_jsonl_writer_turns_nan_into_null() -> None:
    out = io.StringIO()
    writer = JsonlWriter(out)
    prediction = {**PREDICTION, "label": None, "labels": [], "probabilities": {"pos": float("nan")},
                  "abstained": True, "reason": "empty text"}
    writer.write(InputRecord(1, {"text": "", "id": 9}, ""), prediction)
    writer.close()
    record = json.loads(out.getvalue())
    assert record == {"text": "", "id": 9, "label": None, "labels": [], "probabilities": {"pos": None},
                      "abstained": True, "reason": "empty text"}
    assert writer.count == 1


def test_csv_writer_flattens_probabilities_and_keeps_columns() -> None:
    out = io.StringIO()
    writer = CsvWriter(out, ["pos", "neg"])
    writer.write(InputRecord(2, {"id": "1", "text": "a, b", "label": "gold"}, "a, b"), PREDICTION)
    writer.write(InputRecord(3, {"id": "2", "text": "c", "extra": {"k": 1}}, "c"),
                 {**PREDICTION, "truncated": True, "chunks": 3})
    writer.close()
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == ["id", "text", "input_label", "label", "labels", "prob_pos", "prob_neg", "abstained",
                             "reason", "truncated", "chunks"]
    assert rows[0]["text"] == "a, b" and rows[0]["input_label"] == "gold" and rows[0]["label"] == "pos"
    assert float(rows[0]["prob_pos"]) == 0.75 and rows[0]["abstained"] == "false" and rows[0]["reason"] == ""
    assert rows[1]["truncated"] == "true" and rows[0]["chunks"] == "1" and rows[1]["chunks"] == "3"
    assert writer.dropped == {"extra"} and writer.renamed == {"label"}


def test_csv_writer_without_records_still_writes_a_header() -> None:
    out = io.StringIO()
    writer = make_writer("csv", out, ["a", "b"])
    writer.close()
    assert out.getvalue().splitlines() == ["label,labels,prob_a,prob_b,abstained,reason,truncated,chunks"]


def test_table_writer_is_one_readable_line_per_text() -> None:
    out = io.StringIO()
    writer = TableWriter(out, ["pos", "neg"], width=60)
    writer.write(InputRecord(1, {}, "Loved it"), PREDICTION)
    writer.write(InputRecord(2, {}, "word " * 50), {**PREDICTION, "label": None, "labels": [], "abstained": True})
    writer.close()
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["LINE", "LABEL", "PROB", "TEXT"]
    assert lines[1].split() == ["1", "pos", "0.750", "Loved", "it"]
    assert "(abstain)" in lines[2] and lines[2].endswith("…") and len(lines[2]) <= 60


def test_unknown_output_format() -> None:
    with pytest.raises(InputError):
        make_writer("xml", io.StringIO(), ["a"])


# --------------------------------------------------------------------------- atomic output


def test_atomic_output_renames_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    with atomic_output(target) as stream:
        stream.write("partial")
        assert not target.exists()
        assert len(list(tmp_path.iterdir())) == 1  # the temporary file, next to the target
    assert target.read_text() == "partial"
    assert list(tmp_path.iterdir()) == [target]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("exception", [RuntimeError, KeyboardInterrupt])
def test_atomic_output_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path,
                                                                          exception: type[BaseException]) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    with pytest.raises(exception), atomic_output(target) as stream:
        stream.write("new")
        raise exception
    assert target.read_text() == "old\n"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_output_into_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"), atomic_output(tmp_path / "no" / "out.jsonl"):
        pass
    with pytest.raises(InputError, match="directory"), atomic_output(tmp_path):
        pass


def test_same_file(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("x")
    assert same_file(path, tmp_path / "." / "a.txt")
    assert not same_file(path, tmp_path / "b.txt")


def test_write_json_atomic(tmp_path: Path) -> None:
    target = tmp_path / "meta.json"
    write_json_atomic(target, {"a": [1, 2]})
    assert json.loads(target.read_text()) == {"a": [1, 2]} and target.read_text().endswith("\n")
    assert list(tmp_path.iterdir()) == [target]
    with pytest.raises(InputError, match="does not exist"):
        write_json_atomic(tmp_path / "no" / "meta.json", {})


def test_json_safe() -> None:
    value = {"p": [0.5, float("nan")], "q": (float("inf"), -float("inf")), "r": {"s": 1, "t": "x"}}
    assert json_safe(value) == {"p": [0.5, None], "q": [None, None], "r": {"s": 1, "t": "x"}}


# --------------------------------------------------------------------------- labelled examples


def test_read_labeled_reads_every_input_format(tmp_path: Path) -> None:
    """eval and calibrate read what classify reads: CSV, TSV, gzipped files, with the same messages."""
    (tmp_path / "d.csv").write_text("text,label\ngood,positive\nbad,1\n", encoding="utf-8")
    assert read_labeled(tmp_path / "d.csv") == (["good", "bad"], ["positive", "1"])  # CSV has no numbers
    (tmp_path / "d.tsv.gz").write_bytes(gzip.compress(b"label\ttext\nnegative\tawful\n"))
    assert read_labeled(tmp_path / "d.tsv.gz") == (["awful"], ["negative"])
    (tmp_path / "d.data").write_text('{"text": "a", "label": 0}\n', encoding="utf-8")
    assert read_labeled(tmp_path / "d.data") == (["a"], [0])  # a name without a format is JSON Lines
    (tmp_path / "bad.jsonl").write_bytes(b'{"text": "a", "label": 0}\n{"text": "caf\xe9", "label": 1}\n')
    with pytest.raises(InputRecordError, match=r"bad\.jsonl:2: not valid UTF-8"):
        read_labeled(tmp_path / "bad.jsonl")
    assert read_labeled(tmp_path / "bad.jsonl", limit=1) == (["a"], [0])  # the bad record is past the limit
