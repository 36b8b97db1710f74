"""Output files in the format asked for (issue 23): TSV, gzip, Parquet kept on an interrupt, tables that fit.

The commands run in-process on SmolLM2 (``load_shared``); the Ctrl-C of a Parquet run is a real
SIGINT to a real process.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import load_shared

from lpclassify import cli
from lpclassify.errors import InputError
from lpclassify.records.readers import InputRecord
from lpclassify.records.writers import make_writer, output_format_for

SMOL = ["--model", "smollm2-135m", "--threads", "1"]
TEXTS = ["I loved this film", "Terrible, a waste of money", "A masterpiece", "Boring and too long"]


def main(argv: list[str]) -> int:
    return cli.main(argv, load_classifier=load_shared)


# --------------------------------------------------------------------------- 3. -o writes the format it names


@pytest.mark.parametrize(("name", "fmt"), [("o.jsonl", "jsonl"), ("o.csv", "csv"), ("o.tsv", "tsv"),
                                           ("o.TSV.gz", "tsv"), ("o.csv.gz", "csv"), ("o.jsonl.gz", "jsonl"),
                                           ("o.parquet", "parquet")])
def test_output_format_from_every_name_input_reads(name: str, fmt: str) -> None:
    assert output_format_for(name) == fmt


@pytest.mark.parametrize(("name", "words"), [("o.txt", ["no predictions", ".tsv"]), ("o.out", ["cannot tell", "-f"]),
                                             ("o.parquet.gz", ["Parquet compresses itself"]), ("o", ["-f"])])
def test_an_output_name_that_cannot_be_written_is_refused(name: str, words: list[str]) -> None:
    with pytest.raises(InputError) as caught:
        output_format_for(name)
    assert all(word in str(caught.value) for word in words), str(caught.value)
    assert output_format_for(name, "jsonl") == "jsonl" or name.endswith(".gz")  # -f decides where it can


@pytest.mark.model
@pytest.mark.parametrize("name", ["out.tsv", "out.csv.gz", "out.jsonl.gz", "out.tsv.gz"])
def test_classify_writes_the_format_and_compression_the_name_asks_for(name: str, smollm2: str, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    out = tmp_path / name
    assert main(["classify", "-c", "sentiment", *SMOL, "-i", str(source), "-o", str(out)]) == 0
    raw = out.read_bytes()
    text = gzip.decompress(raw).decode() if name.endswith(".gz") else raw.decode()
    if ".jsonl" in name:
        rows = [json.loads(line) for line in text.splitlines()]
    else:
        rows = list(csv.DictReader(io.StringIO(text), delimiter="\t" if ".tsv" in name else ","))
        assert len(rows[0]) > 3  # parsed into columns: the delimiter is the one the name asks for
    assert [str(r["id"]) for r in rows] == ["0", "1", "2", "3"]
    # lpclassify reads its own output back
    capsys.readouterr()
    assert main(["classify", "-c", "sentiment", *SMOL, "-i", str(out), "--text-field", "text"]) == 0
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in again] == [r["label"] for r in rows]


@pytest.mark.model
def test_tsv_is_a_format_choice_for_stdout(smollm2: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "-c", "sentiment", *SMOL, "-f", "tsv", "Great fun"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split("\t")[:3] == ["text", "label", "labels"] and row.startswith("Great fun\t")


@pytest.mark.model
def test_a_txt_output_is_refused_before_anything_runs(smollm2: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "-c", "sentiment", *SMOL, "-o", str(tmp_path / "out.txt"), "fine"]) == 2
    err = capsys.readouterr().err
    assert "lpclassify: error: -o" in err and "out.txt" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- 11. Parquet labels are a list


def test_parquet_labels_are_a_list_column(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    path = tmp_path / "out.parquet"
    with open(path, "wb") as stream:
        writer = make_writer("parquet", stream, ["joy", "fear", "anger"])  # type: ignore[arg-type]
        writer.write(InputRecord(1, {"text": "a"}, "a"), {"label": "fear", "labels": ["fear", "anger"],
                                                          "probabilities": {"joy": 0.1, "fear": 0.5, "anger": 0.4},
                                                          "abstained": False, "reason": None})
        writer.write(InputRecord(2, {"text": "b"}, "b"), {"label": None, "labels": [],
                                                          "probabilities": {"joy": 0.3, "fear": 0.3, "anger": 0.4},
                                                          "abstained": True, "reason": "below the threshold"})
        writer.close()
    table = pq.read_table(path)
    assert table.schema.field("labels").type == pa.list_(pa.string())
    assert table.column("labels").to_pylist() == [["fear", "anger"], []]


# --------------------------------------------------------------------------- 12. --top-k 2 -f table


@pytest.mark.model
def test_top_k_table_shows_every_label_whole(smollm2: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "emotion.yaml"
    config.write_text("prompt: 'Text: {text}\nEmotion:'\nlabels: [joy, fear, anger, surprise, sadness]\n",
                      encoding="utf-8")
    assert main(["classify", "-c", str(config), *SMOL, "--top-k", "2", "-f", "table", "I am scared and furious"]) == 0
    _, row = capsys.readouterr().out.splitlines()
    labels = row.split()[1]
    assert "…" not in labels and len(labels.split(",")) == 2
    assert all(name in {"joy", "fear", "anger", "surprise", "sadness"} for name in labels.split(","))


# --------------------------------------------------------------------------- 2. Parquet output survives Ctrl-C


@pytest.mark.model
@pytest.mark.slow
def test_parquet_run_killed_with_sigint_resumes_to_the_uninterrupted_table(smollm2: str, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    n = 300
    rows = [{"id": i, "text": f"review {i}: {'good' if i % 3 else 'bad'}"} for i in range(n)]
    rows[20]["text"] = ""  # set aside at once: its side file says the run is under way (Parquet rows are buffered)
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    argv = ["classify", "-c", "sentiment", *SMOL, "--batch-size", "1", "-i", "in.jsonl", "--no-progress",
            "--errors", "skip"]
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from lpclassify.cli import main; sys.exit(main(sys.argv[1:]))")
    process = subprocess.Popen([sys.executable, "-c", code, *argv, "-o", "out.parquet"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        rejected = tmp_path / "out.parquet.partial.rejected.jsonl"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None and not (
                rejected.exists() and rejected.read_text(encoding="utf-8").endswith("\n")):
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    kept = pq.read_table(tmp_path / "out.parquet.partial").num_rows
    assert 20 <= kept < n - 1, err  # the 20 rows before the rejected record, at least
    assert f"{kept + 1} input records are done and kept in out.parquet.partial" in err and "--resume" in err, err
    assert not (tmp_path / "out.parquet").exists()

    import os

    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        assert main([*argv, "-o", "out.parquet", "--resume"]) == 0
        assert main([*argv, "-o", "whole.parquet"]) == 0
    finally:
        os.chdir(cwd)
    resumed, whole = pq.read_table(tmp_path / "out.parquet"), pq.read_table(tmp_path / "whole.parquet")
    assert resumed.schema == whole.schema
    assert resumed.to_pylist() == whole.to_pylist() and whole.num_rows == n - 1
    assert (tmp_path / "out.rejected.jsonl").read_text() == (tmp_path / "whole.rejected.jsonl").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.parquet", "out.rejected.jsonl",
                                                          "whole.parquet", "whole.rejected.jsonl"]
