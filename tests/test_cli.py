"""The command line, in-process (``main(argv)``) and as a real subprocess, on the real models."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import load_shared

from lpclassify import cli
from lpclassify.config import resolve_config, shipped_configs
from lpclassify.errors import ModelError
from lpclassify.records.readers import InputRecord
from lpclassify.records.writers import JsonlWriter

ROOT = Path(__file__).resolve().parent.parent
SENTIMENT = str(ROOT / "configs" / "sentiment.yaml")
# One thread: on a shared machine llama.cpp's spinning worker threads slow everything down.
SMOL = ["--model", "smollm2-135m", "--threads", "1"]


def main(argv: list[str]) -> int:
    """``lpclassify ARGV`` in-process, on the session's loaded models (see conftest.load_shared)."""
    return cli.main(argv, load_classifier=load_shared)


def run(*argv: str, stdin: str | None = None, cwd: Path | None = None, timeout: float = 120,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m lpclassify ARGV`` in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "lpclassify", *argv], input=stdin, capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env={**os.environ, **(env or {})}, check=False)


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def assert_one_line_error(stderr: str, *words: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("lpclassify: error: "), stderr
    assert "Traceback" not in stderr
    for word in words:
        assert word in lines[0], stderr


# --------------------------------------------------------------------------- classify, in-process


@pytest.mark.model
def test_classify_texts_as_arguments(smollm2: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "-c", "sentiment", *SMOL, "I loved this film", "Terrible, a waste of money"]) == 0
    out, err = capsys.readouterr()
    records = jsonl(out)  # stdout is not a terminal: JSON Lines
    assert [r["text"] for r in records] == ["I loved this film", "Terrible, a waste of money"]
    assert [r["label"] for r in records] == ["positive", "negative"]
    for record in records:
        assert set(record) == {"text", "label", "labels", "probabilities", "abstained", "reason"}
        assert record["labels"] == [record["label"]] and record["abstained"] is False and record["reason"] is None
        assert sum(record["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert err == ""


@pytest.mark.model
def test_classify_jsonl_keeps_every_other_field(smollm2: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 7, "body": "Wonderful, I recommend it", "label": "pos", "meta": {"k": [1]}}\n\n'
                      '{"id": "b", "body": "Broken on arrival, awful"}\n', encoding="utf-8")
    code = main(["classify", "-c", SENTIMENT, *SMOL, "-i", str(source), "--text-field", "body", "--format", "jsonl",
                 "--batch-size", "2", "--threads", "2"])
    assert code == 0
    out, err = capsys.readouterr()
    first, second = jsonl(out)
    assert first["id"] == 7 and first["body"] == "Wonderful, I recommend it" and first["meta"] == {"k": [1]}
    assert first["input_label"] == "pos" and first["label"] == "positive"  # a gold "label" is kept, renamed
    assert second["id"] == "b" and second["label"] == "negative"
    assert "input_label" in err and "warning" in err


@pytest.mark.model
def test_classify_csv_to_csv_file(smollm2: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.csv"
    source.write_text('id,text,lang\n1,"Great value, works perfectly",en\n2,"Stopped working,\nawful",en\n',
                      encoding="utf-8")
    target = tmp_path / "out.csv"
    assert main(["classify", "-c", "sentiment", *SMOL, "-i", str(source), "-o", str(target), "--no-progress"]) == 0
    out, _ = capsys.readouterr()
    assert out == ""  # everything went to the file
    rows = list(csv.DictReader(target.open(encoding="utf-8", newline="")))
    assert [r["id"] for r in rows] == ["1", "2"] and [r["lang"] for r in rows] == ["en", "en"]
    assert rows[1]["text"] == "Stopped working,\nawful"
    assert [r["label"] for r in rows] == ["positive", "negative"]
    assert float(rows[0]["prob_positive"]) + float(rows[0]["prob_negative"]) == pytest.approx(1, abs=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]  # no temporary file left


@pytest.mark.model
def test_empty_csv_field_is_an_error_naming_the_line_and_leaves_no_output(
        smollm2: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.csv"  # (a blank line of a .txt file is skipped: tests/test_first_run.py)
    source.write_text("id,text\n1,great\n2,\n3,bad\n", encoding="utf-8")
    target = tmp_path / "out.jsonl"
    assert main(["classify", "-c", "sentiment", *SMOL, "-i", str(source), "-o", str(target)]) == 2
    assert_one_line_error(capsys.readouterr().err, f"{source}:3:", "empty text", "empty_text")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


@pytest.mark.model
def test_empty_jsonl_text_abstains_when_the_config_says_so(smollm2: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "abstain.yaml"
    config.write_text(Path(SENTIMENT).read_text(encoding="utf-8") + "\nruntime:\n  empty_text: abstain\n",
                      encoding="utf-8")
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "great"}\n{"text": ""}\n{"text": "bad"}\n', encoding="utf-8")
    assert main(["classify", "-c", str(config), *SMOL, "-i", str(source)]) == 0
    records = jsonl(capsys.readouterr().out)
    assert [r["text"] for r in records] == ["great", "", "bad"]
    assert records[1]["abstained"] is True and records[1]["label"] is None
    assert records[1]["probabilities"] == {"positive": None, "negative": None}  # NaN is not JSON


@pytest.mark.model
def test_malformed_jsonl_line_is_exit_2_and_no_partial_file(smollm2: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "fine"}\n{"text": "broken\n', encoding="utf-8")
    target = tmp_path / "out.jsonl"
    target.write_text("previous results\n", encoding="utf-8")
    assert main(["classify", "-c", "sentiment", *SMOL, "-i", str(source), "-o", str(target)]) == 2
    assert_one_line_error(capsys.readouterr().err, f"{source}:2:", "invalid JSON")
    assert target.read_text(encoding="utf-8") == "previous results\n"  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]


@pytest.mark.model
def test_table_format(smollm2: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["classify", "-c", "sentiment", *SMOL, "--format", "table", "What a great day", "Terrible, a waste of money"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["LINE", "LABEL", "PROB", "TEXT"]
    assert lines[1].split()[:2] == ["1", "positive"] and lines[1].endswith("What a great day")
    assert lines[2].split()[:2] == ["2", "negative"] and len(lines) == 3


@pytest.mark.model
def test_classifier_errors_name_the_lines_of_the_chunk(smollm2: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "short.yaml"
    instructions = "Read this review carefully, then say whether the reviewer liked it. " * 6  # > 64 tokens
    config.write_text(f"prompt: '{instructions}Review: {{text}}'\n"
                      "labels: [positive, negative]\nruntime: {n_ctx: 64, long_inputs: chunk}\n", encoding="utf-8")
    source = tmp_path / "in.txt"
    source.write_text("short\n" + "long " * 100 + "\nshort again\n", encoding="utf-8")
    # The model's path rather than its name: a fresh load, with the config's small context.
    assert main(["classify", "-c", str(config), "--model", smollm2, "--threads", "1", "-i", str(source)]) == 2
    assert_one_line_error(capsys.readouterr().err, f"{source}: lines 1-3:", "template and completions alone",
                          "n_ctx=64")


@pytest.mark.model
def test_ctrl_c_keeps_the_partial_output_for_resume(smollm2: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.txt"
    source.write_text("one\ntwo\nthree\n", encoding="utf-8")
    original = JsonlWriter._write

    def interrupted_after_one(self: JsonlWriter, record: InputRecord, prediction: dict) -> None:
        if self.count >= 1:
            raise KeyboardInterrupt
        original(self, record, prediction)

    monkeypatch.setattr(JsonlWriter, "_write", interrupted_after_one)
    assert main(["classify", "-c", "sentiment", *SMOL, "-i", str(source), "-o", str(tmp_path / "out.jsonl")]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "1 input records are done and kept in" in err and "--resume" in err
    # Nothing that looks complete: no out.jsonl, only the partial files.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl.partial", "out.jsonl.partial.json"]
    assert [json.loads(line)["text"] for line in (tmp_path / "out.jsonl.partial").read_text().splitlines()] == ["one"]


# --------------------------------------------------------------------------- user errors (no model loaded)


@pytest.mark.parametrize(("argv", "words"), [
    (["classify", "-c", "sentimnt", "x"], ["sentimnt", "did you mean 'sentiment'"]),
    (["classify", "-c", "missing.yaml", "x"], ["missing.yaml", "not found"]),
    (["classify", "-c", "sentiment", "-i", "nope.jsonl"], ["input file not found", "nope.jsonl"]),
    (["classify", "-c", "sentiment", "--model", "nosuchmodel", "x"], ["unknown model 'nosuchmodel'"]),
    (["classify", "-c", "sentiment", "-i", "data.json"], ["--input-format"]),
    (["classify", "-c", "sentiment", "-i", "x.txt", "also a text"], ["not both"]),
    (["classify", "-c", "sentiment", "--batch-size", "0", "x"], ["--batch-size", "positive integer"]),
    (["classify", "x"], ["-c/--config"]),
    (["classify", "-c", "sentiment", "--format", "xml", "x"], ["--format"]),
    (["frobnicate"], ["invalid choice"]),
    (["models", "path", "nosuchmodel"], ["unknown model"]),
])
def test_user_errors_are_exit_2_with_one_line(argv: list[str], words: list[str], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_line_error(err, *words)


def test_bad_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("prompt: 'Review: {text}'\nlabls: [a, b]\n", encoding="utf-8")
    assert main(["classify", "-c", str(config), "some text"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()  # every problem, one line each
    assert len(lines) == 2 and all(line.startswith("lpclassify: error: ") and "bad.yaml" in line for line in lines)
    assert "labls: unknown key; did you mean 'labels'" in lines[0] and "labels: missing" in lines[1]


def test_models_path_of_a_model_that_is_not_downloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LPCLASSIFY_CACHE", str(tmp_path / "empty-cache"))
    assert main(["models", "path", "smollm2-135m"]) == 2
    assert_one_line_error(capsys.readouterr().err, "lpclassify models pull smollm2-135m")


def test_models_list(capsys: pytest.CaptureFixture[str]) -> None:
    from lpclassify.models import DEFAULT_MODEL, load_registry

    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for name, entry in load_registry().items():
        row = next(line for line in out.splitlines() if line.split() and line.split()[0] == name)
        assert entry.license in row
        assert any(status in row for status in ("cached", "installed", "not downloaded"))
        assert ("*" in row.split()[1]) == (name == DEFAULT_MODEL)
    assert main(["models", "list", "--json"]) == 0
    records = jsonl(capsys.readouterr().out)
    assert {r["name"] for r in records} == set(load_registry())
    assert sum(r["default"] for r in records) == 1


@pytest.mark.parametrize("command", [[], ["classify"], ["validate"], ["explain"], ["models"], ["models", "list"],
                                     ["models", "pull"], ["models", "path"]])
def test_help_everywhere(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: lpclassify")
    assert "example" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from lpclassify import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith(f"lpclassify {__version__}")


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: lpclassify" in capsys.readouterr().err


def test_internal_error_is_exit_1_traceback_only_with_debug(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import lpclassify.models

    def broken() -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(lpclassify.models, "list_models", broken)
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    assert main(["models", "list"]) == 1
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError: boom" in err and "report" in err and "Traceback" not in err
    assert main(["models", "list", "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    assert main(["models", "list"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_shipped_configs_resolve_by_name() -> None:
    assert resolve_config("sentiment") == Path(SENTIMENT)
    assert {"sentiment", "spam", "topic", "support_tags"} <= set(shipped_configs())


# --------------------------------------------------------------------------- validate


def test_validate_configs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("prompt: '{text}'\nlabels: {a: {completions: [' x']}, b: {completions: [' x']}}\n",
                   encoding="utf-8")
    assert main(["validate", "sentiment", str(ROOT / "configs" / "support_tags.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == ["ok: sentiment (2 labels, single)", "ok: support_tags (5 labels, multi)"]
    assert main(["validate", str(bad), "spam", "nosuch"]) == 2
    out, err = capsys.readouterr()
    assert out.splitlines() == ["ok: spam (2 labels, single)"]
    errors = err.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("lpclassify: error: ") for line in errors)
    assert "bad.yaml" in errors[0] and "also a completion of label 'a'" in errors[0]


@pytest.mark.model
def test_validate_shows_tokens_and_warns(smollm2: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "warn.yaml"
    config.write_text("prompt: 'Review: {text}\\nVerdict:'\nlabels:\n"
                      "  up: {completions: [' yes', ' thumbs up and a standing ovation from everyone']}\n"
                      "  down: {completions: [' yes but no']}\n", encoding="utf-8")
    assert main(["validate", SENTIMENT, str(config), *SMOL]) == 0
    out = capsys.readouterr().out
    assert "ok: sentiment (2 labels, single)" in out and "ok: warn (2 labels, single)" in out
    assert 'positive  " positive"  " positive"  (1 token)' in out
    assert 'up: completion " thumbs up and a standing ovation from everyone" is' in out
    assert 'different labels start with the same token " yes": " yes" (up), " yes but no" (down)' in out


# --------------------------------------------------------------------------- explain


@pytest.mark.model
def test_explain_json(smollm2: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "-c", "sentiment", *SMOL, "--json", "An absolute joy"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["prompts"] == ["Review: An absolute joy\nSentiment:"]
    assert len(report["completions"]) == 8
    first = report["completions"][0]
    assert first["label"] == "positive" and first["completion"] == " positive"
    assert first["tokens"][0]["text"] == " positive"
    assert first["logprob"] == pytest.approx(sum(t["logprob"] for t in first["tokens"]))
    assert set(report["probabilities"]) == set(report["probabilities_uncalibrated"]) == {"positive", "negative"}
    assert report["prior"] is not None  # the config calibrates on content-free inputs
    assert report["prediction"]["label"] == max(report["probabilities"], key=report["probabilities"].get)
    assert "highest probability" in report["prediction"]["explanation"]


@pytest.mark.model
def test_explain_text_multi_label(smollm2: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    questions = tmp_path / "questions.yaml"  # a yes/no question per label
    questions.write_text("prompt: 'Ticket: {text}\nIs it about {label}? Answer:'\nlabels: [billing, bug, account, "
                         "shipping]\ndecision: {mode: multi}\n")
    assert main(["explain", "-c", str(questions), *SMOL, "I was charged twice for my order"]) == 0
    out = capsys.readouterr().out
    assert "prompt 1 of 4:" in out and "Ticket: I was charged twice for my order" in out
    assert "billing/yes" in out and "p(yes)" in out and "threshold" in out
    assert "decision:" in out and "why:" in out
    # the shipped support_tags asks one shared question: the labels compete, each has its threshold
    assert main(["explain", "-c", "support_tags", *SMOL, "I was charged twice for my order"]) == 0
    out = capsys.readouterr().out
    assert "prompt:" in out and "p after calibration" in out and "threshold" in out and "never chosen" in out
    assert "billing/yes" not in out and "decision:" in out and "why:" in out


def test_explain_many_labels_shows_the_most_likely(smollm2: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = "Where is my parcel? It has not arrived yet."
    assert main(["explain", "-c", "support_intents", *SMOL, "--json", text]) == 0
    report = json.loads(capsys.readouterr().out)
    probabilities = report["probabilities"]
    assert len(probabilities) == 57  # the JSON report holds every label
    best = sorted(probabilities, key=lambda name: -probabilities[name])
    assert main(["explain", "-c", "support_intents", *SMOL, "--top", "5", text]) == 0
    out = capsys.readouterr().out
    labels_table = out.split("\nlabels: ", 1)[1].split("\nrerank:", 1)[0]  # the table before the rerank's
    assert "p after rerank" in out.split("\nrerank:", 1)[1]  # scoring.rerank: the top 3 scored again
    assert labels_table.startswith("the 5 most likely of 57 (--all shows every one)")
    notes = ("prior:", "(calibration:")  # lines under the table

    def table_rows(block: str) -> list[str]:
        return [line.strip() for line in block.splitlines()[2:] if line.strip() and not line.strip().startswith(notes)]

    rows = table_rows(labels_table)
    assert len(rows) == 5 and all(row.startswith(name + " ") for row, name in zip(rows, best, strict=False))
    assert main(["explain", "-c", "support_intents", *SMOL, "--all", text]) == 0
    everything = capsys.readouterr().out.split("\nlabels:", 1)[1].split("\nrerank:", 1)[0]
    assert len(table_rows(everything)) == 57
    assert "prior" in labels_table.splitlines()[1]  # contextual calibration: its prior is a column


def test_classify_top_k_writes_the_k_best(smollm2: str, capsys: pytest.CaptureFixture[str]) -> None:
    texts = ["Where is my parcel?", "I want my money back for the broken lamp"]
    assert main(["classify", "-c", "support_intents", *SMOL, "--format", "jsonl", *texts]) == 0
    full = jsonl(capsys.readouterr().out)
    assert main(["classify", "-c", "support_intents", *SMOL, "--format", "jsonl", "--top-k", "3", *texts]) == 0
    top = jsonl(capsys.readouterr().out)
    for whole, row in zip(full, top, strict=True):
        best = sorted(whole["probabilities"], key=lambda name: -whole["probabilities"][name])[:3]
        assert row["labels"] == best and list(row["probabilities"]) == best
        assert row["probabilities"] == {name: whole["probabilities"][name] for name in best}
        assert row["label"] == whole["label"] == best[0]


# --------------------------------------------------------------------------- subprocess


@pytest.mark.model
def test_subprocess_stdin_one_text_per_line(smollm2: str) -> None:
    result = run("classify", "-c", SENTIMENT, *SMOL, stdin="I love it\nIt broke after a day, awful\n")
    assert result.returncode == 0, result.stderr
    records = jsonl(result.stdout)
    assert [r["text"] for r in records] == ["I love it", "It broke after a day, awful"]
    assert all(r["label"] in ("positive", "negative") for r in records)
    assert result.stderr == ""


@pytest.mark.model
def test_subprocess_jsonl_file_to_output_file(smollm2: str, tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text('{"text": "Superb", "id": 1}\n{"text": "Dreadful", "id": 2}\n',
                                       encoding="utf-8")
    result = run("classify", "-c", "sentiment", *SMOL, "-i", "in.jsonl", "-o", "out.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    records = jsonl((tmp_path / "out.jsonl").read_text(encoding="utf-8"))
    assert [(r["id"], r["text"]) for r in records] == [(1, "Superb"), (2, "Dreadful")]


@pytest.mark.parametrize(("argv", "words"), [
    (["classify", "-c", "bad.yaml", "x"], ["bad.yaml", "labels"]),
    (["classify", "-c", "sentiment", "-i", "missing.csv"], ["input file not found"]),
    (["classify", "-c", "sentiment", "--model", "nosuchmodel", "some text"], ["unknown model 'nosuchmodel'"]),
])
def test_subprocess_user_errors(argv: list[str], words: list[str], tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("prompt: '{text}'\nlabels: 3\n", encoding="utf-8")
    result = run(*argv, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert_one_line_error(result.stderr, *words)


@pytest.mark.model
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_subprocess_interrupted_mid_run(smollm2: str, tmp_path: Path, sig: signal.Signals) -> None:
    """Ctrl-C (or SIGTERM) mid-run: exit 130 (143), complete lines on stdout, no traceback, no -o file that
    looks complete."""
    (tmp_path / "in.txt").write_text("".join(f"review number {i}, quite good\n" for i in range(2000)),
                                     encoding="utf-8")
    # A shell may start background jobs with SIGINT ignored; make sure Python turns it into KeyboardInterrupt.
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from lpclassify.cli import main; sys.exit(main(sys.argv[1:]))")
    argv = ["classify", "-c", SENTIMENT, *SMOL, "--batch-size", "1", "-i", "in.txt"]
    if sig == signal.SIGTERM:
        argv += ["-o", "out.jsonl"]
    process = subprocess.Popen([sys.executable, "-c", code, *argv], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        if sig == signal.SIGINT:
            first = process.stdout.readline()  # type: ignore[union-attr]  # results are streaming out
            assert json.loads(first)["text"] == "review number 0, quite good"
        else:
            partial = tmp_path / "out.jsonl.partial"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (partial.exists() and partial.read_text().count("\n") >= 2):
                time.sleep(0.02)
        process.send_signal(sig)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == (130 if sig == signal.SIGINT else 143), err
    assert ("interrupted" if sig == signal.SIGINT else "terminated") in err and "Traceback" not in err
    assert all(json.loads(line)["label"] for line in out.splitlines())  # only whole records
    if sig == signal.SIGINT:
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]
    else:  # kept for --resume; nothing named out.jsonl
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl.partial", "out.jsonl.partial.json"]
        assert "--resume" in err


@pytest.mark.model
def test_default_model_from_stdin() -> None:
    """The README's first example, on the default model (Gemma 3 270M), through the installed command."""
    from lpclassify.models import resolve_model

    try:
        resolve_model("default")
    except ModelError as exc:
        pytest.skip(f"default model not available: {exc}")
    script = Path(sys.executable).with_name("lpclassify")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "lpclassify"]
    result = subprocess.run([*command, "classify", "-c", SENTIMENT, "--threads", "1"],
                            input="I want a refund, the product broke\n",
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["label"] in ("positive", "negative")
    assert set(record["probabilities"]) == {"positive", "negative"}
    assert sum(record["probabilities"].values()) == pytest.approx(1, abs=1e-5)
