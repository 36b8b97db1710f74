"""Parquet in and out (pyarrow, the ``ray`` extra): the readers' and writers' semantics, and the CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from conftest import load_shared

from lpclassify import cli
from lpclassify.errors import InputError
from lpclassify.records.readers import InputRecord, InputRecordError, RecordReader, input_format_for
from lpclassify.records.writers import make_writer, output_format_for

pa = pytest.importorskip("pyarrow", reason="the ray extra is not installed: pip install -e '.[test,ray]'")
pq = pytest.importorskip("pyarrow.parquet")

SMOL = ["--model", "smollm2-135m", "--threads", "1"]


def parquet_bytes(table: dict[str, list]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table(table), buffer, row_group_size=2)  # several row groups: the reader streams them
    return buffer.getvalue()


def test_formats_from_the_file_name() -> None:
    assert input_format_for("data/x.parquet") == "parquet"
    assert output_format_for("y.parquet") == "parquet"


def test_parquet_rows_are_records_with_their_fields_and_row_numbers() -> None:
    data = parquet_bytes({"id": [1, 2, 3], "body": ["good", "bad", "fine"], "score": [0.5, None, 1.5]})
    reader = RecordReader(io.BytesIO(data), "parquet", source="in.parquet", text_field="body")
    assert list(reader) == [InputRecord(1, {"id": 1, "body": "good", "score": 0.5}, "good"),
                            InputRecord(2, {"id": 2, "body": "bad", "score": None}, "bad"),
                            InputRecord(3, {"id": 3, "body": "fine", "score": 1.5}, "fine")]


def test_a_missing_text_column_or_a_non_string_text_is_named() -> None:
    data = parquet_bytes({"id": [1], "body": ["x"]})
    with pytest.raises(InputError, match=r"in.parquet: no column 'text' \(columns: 'id', 'body'\)"):
        list(RecordReader(io.BytesIO(data), "parquet", source="in.parquet"))
    data = parquet_bytes({"text": ["ok", None, "fine"]})
    items = list(RecordReader(io.BytesIO(data), "parquet", source="in.parquet").items())
    assert isinstance(items[1], InputRecordError)
    assert str(items[1]) == "in.parquet:2: field 'text' is null, expected a string"
    assert items[1].raw == {"text": None} and [i.text for i in items if isinstance(i, InputRecord)] == ["ok", "fine"]


def test_a_file_that_is_not_parquet_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"in\.parquet: cannot read as Parquet"):
        list(RecordReader(io.BytesIO(b"not parquet at all"), "parquet", source="in.parquet"))


def test_the_writer_keeps_fields_and_types(tmp_path: Path) -> None:
    path = tmp_path / "out.parquet"
    with open(path, "w", encoding="utf-8", newline="") as stream:
        writer = make_writer("parquet", stream, ["pos", "neg"])
        writer.write(InputRecord(1, {"id": 7, "text": "a", "label": "gold"}, "a"),
                     {"label": "pos", "labels": ["pos"], "probabilities": {"pos": 0.75, "neg": 0.25},
                      "abstained": False, "reason": None})
        writer.write(InputRecord(2, {"id": 8, "text": "b", "label": "gold"}, "b"),
                     {"label": None, "labels": [], "probabilities": {"pos": 0.5, "neg": 0.5},
                      "abstained": True, "reason": "below the threshold"})
        writer.close()
    assert writer.count == 2 and writer.renamed == {"label"}
    table = pq.read_table(path)
    assert table.column_names == ["id", "text", "input_label", "label", "labels", "prob_pos", "prob_neg",
                                  "abstained", "reason", "truncated", "chunks"]
    assert table.to_pylist()[1] == {"id": 8, "text": "b", "input_label": "gold", "label": None, "labels": [],
                                    "prob_pos": 0.5, "prob_neg": 0.5, "abstained": True,
                                    "reason": "below the threshold", "truncated": False, "chunks": 1}
    assert table.schema.field("prob_pos").type == pa.float64()


@pytest.mark.model
def test_classify_parquet_in_and_out_matches_jsonl(smollm2: str, tmp_path: Path) -> None:
    texts = ["I loved this film", "Terrible, a waste of money", "A masterpiece", "Boring and too long"]
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": list(range(4)), "text": texts}), source)
    jsonl_source = tmp_path / "in.jsonl"
    jsonl_source.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    main = cli.main
    assert main(["classify", "-c", "sentiment", *SMOL, "-i", str(source), "-o", str(tmp_path / "out.parquet"),
                 "--no-progress"], load_classifier=load_shared) == 0
    assert main(["classify", "-c", "sentiment", *SMOL, "-i", str(jsonl_source), "-o", str(tmp_path / "out.jsonl"),
                 "--no-progress"], load_classifier=load_shared) == 0
    assert not (tmp_path / "out.parquet.partial").exists()
    rows = pq.read_table(tmp_path / "out.parquet").to_pylist()
    expected = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [e["id"] for e in expected] == [0, 1, 2, 3]
    assert [r["label"] for r in rows] == [e["label"] for e in expected]
    assert [r["prob_positive"] for r in rows] == [e["probabilities"]["positive"] for e in expected]
