"""Robustness: long inputs, bad inputs, interrupted and resumed runs, threads (real SmolLM2, one thread)."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import load_shared, model_path

from lpclassify import cli
from lpclassify.classifier import Classifier
from lpclassify.config import load_config
from lpclassify.errors import InputError, ModelError
from lpclassify.long_inputs import Fitter
from lpclassify.records.readers import InputRecord
from lpclassify.records.resume import RunFiles, complete_rows, default_rejected_path
from lpclassify.records.writers import Writer
from lpclassify.tokenization import encode_pairs

ROOT = Path(__file__).resolve().parent.parent
SENTIMENT = ROOT / "configs" / "sentiment.yaml"
SMOL = ["--model", "smollm2-135m", "--threads", "1"]
LONG = " ".join(f"Scene {i}: the plot drags but the acting is superb." for i in range(14))  # ~200 tokens


def main(argv: list[str]) -> int:
    """``lpclassify ARGV`` in-process, on the session's loaded models (see conftest.load_shared)."""
    return cli.main(argv, load_classifier=load_shared)


def error_line(err: str) -> str:
    """The one ``lpclassify: error:`` line (a resume hint may follow it), with no traceback."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("lpclassify: error: ")]
    assert len(errors) == 1, err
    return errors[0]


# --------------------------------------------------------------------------- long inputs, no model

TOY = lambda text, add_bos: [ord(c) for c in text]  # noqa: E731 - one character per token


def toy_fitter(n_ctx: int) -> Fitter:
    return Fitter(lambda text: encode_pairs(TOY, [("Text: " + text + "\nLabel:", " yes"), ("Text: " + text + "\nLabel:",
                                                                                           " no way")]), n_ctx)


@pytest.mark.parametrize("text", [LONG, "x" * 900, "word\n" * 300, "a b " * 200 + "z" * 150])
def test_windows_cover_the_text_and_each_fits(text: str) -> None:
    fitter = toy_fitter(120)
    windows = fitter.windows(text)
    assert len(windows) > 1
    assert all(encoded.n_tokens <= 120 for encoded, _ in windows)
    position = 0  # the windows are consecutive pieces of the text; only whitespace falls between them
    for _, piece in windows:
        while text[position].isspace():
            position += 1
        assert text.startswith(piece, position)
        position += len(piece)
    assert not text[position:].strip()
    lengths = [len(piece) for _, piece in windows]
    assert min(lengths[:-1]) > 0.5 * max(lengths)  # evened out


@pytest.mark.parametrize("side", ["head", "tail", "middle"])
def test_truncate_cuts_the_text_never_the_template_or_completions(side: str) -> None:
    fitter = toy_fitter(100)
    encoded, kept = fitter.truncate(LONG, side)
    assert encoded.n_tokens <= 100 and encoded.n_tokens >= 0.9 * 100 - 5  # nearly full
    prompt = "".join(map(chr, encoded.prompt))
    assert prompt == f"Text: {kept}\nLabel:"  # the template whole around the cut text
    assert ["".join(map(chr, c.tokens)) for c in encoded.candidates] == [" yes", " no way"]
    if side == "head":
        assert LONG.startswith(kept)
    elif side == "tail":
        assert LONG.endswith(kept)
    else:
        head, tail = kept.split(" … ")
        assert LONG.startswith(head) and LONG.endswith(tail)


def test_a_template_that_leaves_no_room_is_an_input_error() -> None:
    with pytest.raises(InputError, match="template and completions alone take"):
        toy_fitter(20).truncate(LONG, "head")


# --------------------------------------------------------------------------- long inputs, real model


@pytest.fixture(scope="module")
def small_backend():  # type: ignore[no-untyped-def]
    """SmolLM2 with a 96-token context: the test texts are long for it."""
    from lpclassify.backends.llama_cpp import LlamaCppBackend

    backend = LlamaCppBackend(model_path("smollm2"), n_ctx=96, batch_size=4, threads=1)
    yield backend
    backend.close()


def sentiment(backend: object, **runtime: object) -> Classifier:
    config = load_config(SENTIMENT)
    return Classifier(replace(config, runtime=replace(config.runtime, **runtime)), backend)  # type: ignore[arg-type]


@pytest.mark.model
@pytest.mark.parametrize("side", ["head", "tail", "middle"])
def test_truncated_prediction_on_the_real_model(small_backend: object, side: str) -> None:
    clf = sentiment(small_backend, truncate_side=side)
    encoded, truncated = clf.encode(LONG)
    assert truncated and encoded.n_tokens <= 96
    short, _ = clf.encode("Fine.")
    assert [c.tokens[-c.n_scored:] for c in encoded.candidates] == [c.tokens[-c.n_scored:] for c in short.candidates]
    rendered = "".join(clf.backend.token_text(t) for t in encoded.prompt)  # type: ignore[attr-defined]
    assert "Review: " in rendered and rendered.endswith("\nSentiment:")
    prediction = clf.classify(LONG)
    assert prediction.truncated and prediction.n_chunks == 1 and prediction.as_dict()["truncated"] is True


@pytest.mark.model
def test_chunked_text_is_the_mean_of_its_windows(small_backend: object) -> None:
    clf = sentiment(small_backend, long_inputs="chunk")
    fitter = Fitter(lambda text: encode_pairs(small_backend.tokenize, clf.prompts(text)),  # type: ignore[attr-defined]
                    small_backend.n_ctx)  # type: ignore[attr-defined]  # the windows the classifier scores
    pieces = [piece for _, piece in fitter.windows(LONG)]
    assert len(pieces) > 2 and " ".join(pieces).split() == LONG.split()
    prediction = clf.classify(LONG)
    assert prediction.n_chunks == len(pieces) and not prediction.truncated
    assert prediction.as_dict()["chunks"] == len(pieces) and "chunks" not in clf.classify("Fine.").as_dict()
    whole, parts = clf.raw_scores([LONG]), clf.raw_scores(pieces)
    np.testing.assert_allclose(whole.logprobs[0], parts.logprobs.mean(axis=0), rtol=0, atol=1e-9)
    # ... then calibrated and decided like any text's scores
    assert prediction.probabilities == pytest.approx(dict(zip(clf.classes_, clf.probabilities(whole)[0], strict=True)))


@pytest.mark.model
def test_cli_counts_truncations_and_writes_chunks(smollm2: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.txt"
    source.write_text(f"{LONG}\nGreat fun.\n{LONG[::-1]}\n", encoding="utf-8")
    for policy in ("truncate", "chunk"):
        config = tmp_path / f"{policy}.yaml"
        config.write_text(SENTIMENT.read_text(encoding="utf-8") + f"\nruntime: {{n_ctx: 96, long_inputs: {policy}}}\n",
                          encoding="utf-8")
        # the model's path, not its name: a fresh load with the config's small context
        assert main(["classify", "-c", str(config), "--model", smollm2, "--threads", "1", "-i", str(source)]) == 0
        out, err = capsys.readouterr()
        rows = [json.loads(line) for line in out.splitlines()]
        if policy == "truncate":
            assert [r.get("truncated", False) for r in rows] == [True, False, True]
            assert err.strip() == ("lpclassify: warning: 2 texts were truncated to fit n_ctx=96 (runtime.long_inputs: "
                                   "chunk scores long texts whole, in windows)")
        else:
            assert [r.get("chunks", 1) > 1 for r in rows] == [True, False, True] and err == ""


# --------------------------------------------------------------------------- bad inputs

BAD_CONFIGS = [
    ("prompt: [unclosed\nlabels: [a, b]\n", ["invalid YAML: line 2, column"]),
    ("prompt: 'Review: {text}'\nlabels: [a, b]\nscoring: {normalise: sum}\n",
     ["scoring.normalise: unknown key; did you mean 'normalize'?"]),
    ("prompt: 'Review: {text}'\nlabels: [a, b]\ndecision: {top_k: many}\n", ["decision.top_k", "integer"]),
    ("prompt: 'Review: {text}'\nlabels: [a, b]\nruntime: {long_inputs: split}\n", ["runtime.long_inputs", "chunk"]),
]


@pytest.mark.parametrize(("document", "words"), BAD_CONFIGS)
def test_bad_config_is_one_line_and_exit_2(document: str, words: list[str], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(document, encoding="utf-8")
    assert main(["classify", "-c", str(config), "some text"]) == 2
    line = error_line(capsys.readouterr().err)
    assert all(word in line for word in words), line


def bad_model(tmp_path: Path, kind: str) -> Path:
    if kind == "missing":
        return tmp_path / "missing.gguf"
    if kind == "directory":
        (tmp_path / "dir.gguf").mkdir()
        return tmp_path / "dir.gguf"
    path = tmp_path / f"{kind}.gguf"
    if kind == "not-gguf":
        path.write_text("this is not a model\n", encoding="utf-8")
    else:  # truncated: the first megabyte of a real model
        with open(model_path("smollm2"), "rb") as source:
            path.write_bytes(source.read(1 << 20))
    return path


@pytest.mark.parametrize(("kind", "words"), [
    ("missing", ["model file not found"]), ("directory", ["is a directory"]),
    ("not-gguf", ["is not a GGUF file"]), ("truncated", ["is truncated: expected at least"]),
])
def test_bad_model_file_is_one_line_and_exit_2(kind: str, words: list[str], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = bad_model(tmp_path, kind)
    assert main(["classify", "-c", "sentiment", "--model", str(path), "some text"]) == 2
    line = error_line(capsys.readouterr().err)
    assert all(word in line for word in words), line


@pytest.mark.parametrize("kind", ["not-gguf", "truncated"])
def test_the_backend_checks_the_file_before_llama_cpp_reads_it(kind: str, tmp_path: Path) -> None:
    from lpclassify.backends.llama_cpp import LlamaCppBackend

    with pytest.raises(ModelError, match=r"not a GGUF file|is truncated"):
        LlamaCppBackend(bad_model(tmp_path, kind))


# A gzipped file cut short: the 11 records before the cut are read and classified first.
CUT_GZIP = gzip.compress("".join(f"review {i}: {'good' * (i % 5)} {'bad' * (i % 3)} {i * i}\n"
                                 for i in range(300)).encode())
BAD_RECORDS = [
    ("in.txt.gz", CUT_GZIP[:150], "in.txt.gz: cannot read: Compressed file ended before the end"),
    ("in.txt", b"good\n\xff\xfe bad\n", "in.txt:2: not valid UTF-8 (byte 0xff at byte 1 of the line)"),
    ("in.txt", b"good\n   \n", "in.txt:2: empty text; nothing to classify"),
    ("in.jsonl", b'{"text": "good"}\n{"text": "broken\n', "in.jsonl:2: invalid JSON: Invalid control character"),
    ("in.jsonl", b'{"text": "good"}\n{"body": "x"}\n', "in.jsonl:2: no field 'text' in this record"),
    ("in.jsonl", b'{"text": "good"}\n{"text": " "}\n', "in.jsonl:2: empty text"),
    ("in.jsonl", b'{"text": "good"}\n{"text": 3}\n', "in.jsonl:2: field 'text' is a number, expected a string"),
    ("in.csv", b'id,text\n1,good\n2,bad,extra\n', "in.csv:3: expected 2 columns as in the header, got 3"),
    ("in.csv", b'id,text\n1,good\n2,"unterminated\n', "in.csv:3: malformed CSV row"),
    ("in.csv", b'id,body\n1,good\n', "in.csv:1: no column 'text' in the header"),
]


@pytest.mark.model
@pytest.mark.parametrize(("name", "data", "message"), BAD_RECORDS)
def test_bad_record_names_its_line_and_exit_2(name: str, data: bytes, message: str, smollm2: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    Path(name).write_bytes(data)
    assert main(["classify", "-c", "sentiment", *SMOL, "-i", name, "-o", "out.jsonl"]) == 2
    line = error_line(capsys.readouterr().err)
    assert line.startswith(f"lpclassify: error: {message}"), line
    assert not Path("out.jsonl").exists()


@pytest.mark.model
def test_empty_argument_names_the_argument(smollm2: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "-c", "sentiment", *SMOL, "fine", "  "]) == 2
    assert error_line(capsys.readouterr().err).startswith("lpclassify: error: argument 2: empty text")


MIXED = (b'{"id": 1, "text": "A delight from start to finish."}\n'
         b'{"id": 2, "text": "broken\n'
         b'{"id": 3, "body": "no text field"}\n'
         b'{"id": 4, "text": "   "}\n'
         b'{"id": 5, "text": "caf\xe9 au lait, cold and bitter"}\n'
         b'{"id": 6, "text": "Dreadful, I want my money back."}\n')


@pytest.mark.model
@pytest.mark.parametrize("to_file", [True, False])
def test_errors_skip_sets_every_bad_record_aside(to_file: bool, smollm2: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    Path("in.jsonl").write_bytes(MIXED)
    argv = ["classify", "-c", "sentiment", *SMOL, "-i", "in.jsonl", "--errors", "skip"]
    assert main(argv + (["-o", "out.jsonl"] if to_file else [])) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in (Path("out.jsonl").read_text() if to_file else out).splitlines()]
    assert [r["id"] for r in rows] == [1, 6]
    side = Path("out.rejected.jsonl" if to_file else "in.rejected.jsonl")
    rejected = [json.loads(line) for line in side.read_text(encoding="utf-8").splitlines()]
    assert [(r["source"], r["line"]) for r in rejected] == [("in.jsonl", n) for n in (2, 3, 4, 5)]
    reasons = ["invalid JSON: Invalid control character", "no field 'text' in this record",
               "empty text; nothing to classify", "not valid UTF-8 (byte 0xe9 at byte 23 of the line)"]
    assert all(r["reason"].startswith(reason) for r, reason in zip(rejected, reasons, strict=True)), rejected
    assert rejected[0]["record"] == '{"id": 2, "text": "broken'  # the line as read: nothing vanishes
    assert rejected[2]["record"] == {"id": 4, "text": "   "}
    assert rejected[3]["record"] == '{"id": 5, "text": "caf\\xe9 au lait, cold and bitter"}'
    assert err.strip() == f"lpclassify: warning: 4 of 6 records were rejected and set aside in {side} (line and " \
                          "reason for each)"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.jsonl", side.name] + (["out.jsonl"] if to_file
                                                                                          else []))


def test_default_rejected_paths() -> None:
    assert default_rejected_path("out/run.jsonl", "in.csv") == Path("out/run.rejected.jsonl")
    assert default_rejected_path("labelled.csv", None) == Path("labelled.rejected.jsonl")
    assert default_rejected_path(None, "data/in.jsonl.gz") == Path("data/in.rejected.jsonl")
    assert default_rejected_path(None, None) == Path("rejected.jsonl")


# --------------------------------------------------------------------------- interrupted runs


def test_complete_rows_drops_a_torn_jsonl_line(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl.partial"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": 3, "b"')
    assert complete_rows(path, "jsonl") == (2, None)
    assert path.read_bytes() == b'{"a": 1}\n{"a": 2}\n'


@pytest.mark.parametrize(("data", "rows", "kept"), [
    (b'id,text\n1,"two\nlines"\n2,"torn\nmid', 1, b'id,text\n1,"two\nlines"\n'),  # an open quote
    (b'id,text\n1,a\n2,b', 1, b"id,text\n1,a\n"),  # no final newline
    (b'id,text\n1,a\n2\n', 1, b"id,text\n1,a\n"),  # too few columns
    (b'id,te', 0, b""),
    (b'id,text\n', 0, b"id,text\n"),
])
def test_complete_rows_drops_a_torn_csv_row(data: bytes, rows: int, kept: bytes, tmp_path: Path) -> None:
    path = tmp_path / "out.csv.partial"
    path.write_bytes(data)
    count, header = complete_rows(path, "csv")
    assert count == rows and path.read_bytes() == kept
    assert header == (["id", "text"] if kept else None)


def test_a_fresh_run_never_overwrites_a_partial_output(tmp_path: Path) -> None:
    (tmp_path / "out.jsonl.partial").write_text('{"a": 1}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"interrupted run: continue it with --resume, or delete .*partial\*"):
        RunFiles(tmp_path / "out.jsonl", "jsonl", resume=False)
    with pytest.raises(InputError, match="--resume needs JSON Lines or CSV output"):
        RunFiles(tmp_path / "out.txt", "table", resume=True)
    with pytest.raises(InputError, match="does not exist"):
        RunFiles(tmp_path / "no" / "out.jsonl", "jsonl", resume=False)


def interrupt_after(monkeypatch: pytest.MonkeyPatch, rows: int) -> None:
    """Ctrl-C once the writer has written ``rows`` rows."""
    original = Writer.write

    def write(self: Writer, record: InputRecord, prediction: dict) -> None:
        if self.count >= rows:
            raise KeyboardInterrupt
        original(self, record, prediction)

    monkeypatch.setattr(Writer, "write", write)


@pytest.mark.model
@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_resume_after_ctrl_c_gives_the_uninterrupted_result(suffix: str, smollm2: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    Path("in.jsonl").write_bytes(MIXED + b'{"id": 7, "text": "Two\\nlines, both dull."}\n'
                                 + b'{"id": 8, "text": "Lovely."}\n')
    argv = ["classify", "-c", "sentiment", *SMOL, "-i", "in.jsonl", "--errors", "skip", "--batch-size", "1"]
    assert main([*argv, "-o", f"whole.{suffix}"]) == 0
    capsys.readouterr()
    with monkeypatch.context() as patch:
        interrupt_after(patch, 2)  # rows 1 and 6 written, records 2-5 set aside: 6 input records done
        assert main([*argv, "-o", f"out.{suffix}"]) == 130
    err = capsys.readouterr().err
    assert f"6 input records are done and kept in out.{suffix}.partial; run the same command with --resume" in err
    assert not Path(f"out.{suffix}").exists()
    with monkeypatch.context() as patch:  # a second interruption, in the resumed run: no row yet
        interrupt_after(patch, 0)
        assert main([*argv, "-o", f"out.{suffix}", "--resume"]) == 130
    capsys.readouterr()
    assert main([*argv, "-o", f"out.{suffix}", "--resume"]) == 0
    assert Path(f"out.{suffix}").read_text(encoding="utf-8") == Path(f"whole.{suffix}").read_text(encoding="utf-8")
    assert Path("out.rejected.jsonl").read_text() == Path("whole.rejected.jsonl").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["in.jsonl", f"whole.{suffix}", "whole.rejected.jsonl", f"out.{suffix}", "out.rejected.jsonl"])


@pytest.mark.model
def test_resume_refuses_another_input_or_config(smollm2: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    Path("in.txt").write_text("good\nbad\nfine\n", encoding="utf-8")
    Path("other.txt").write_text("good\nbad\nfine\n", encoding="utf-8")
    with monkeypatch.context() as patch:
        interrupt_after(patch, 1)
        assert main(["classify", "-c", "sentiment", *SMOL, "-i", "in.txt", "-o", "out.jsonl"]) == 130
    capsys.readouterr()
    cases = [
        (["-c", "sentiment", "-i", "other.txt", "--resume"], "was made from the input"),
        (["-c", "spam", "-i", "in.txt", "--resume"], "was made from the config or model"),
        (["-c", "sentiment", "-i", "in.txt"], "holds the rows of an interrupted run: continue it with --resume"),
    ]
    for argv, words in cases:
        assert main(["classify", *argv, *SMOL, "-o", "out.jsonl"]) == 2
        assert words in error_line(capsys.readouterr().err)
    assert main(["classify", "-c", "sentiment", *SMOL, "-i", "in.txt", "--resume"]) == 2
    assert "give it with -o FILE" in error_line(capsys.readouterr().err)
    # The input shrank under the partial output:
    Path("in.txt").write_text("good\n", encoding="utf-8")
    (tmp_path / "out.jsonl.partial").write_text('{"a": 1}\n{"a": 2}\n', encoding="utf-8")
    assert main(["classify", "-c", "sentiment", *SMOL, "-i", "in.txt", "-o", "out.jsonl", "--resume"]) == 2
    assert "the input has 1 records, but the partial output already holds 2" in capsys.readouterr().err
    # --resume with nothing to resume just runs
    assert main(["classify", "-c", "sentiment", *SMOL, "-i", "other.txt", "-o", "new.jsonl", "--resume"]) == 0
    assert len(Path("new.jsonl").read_text().splitlines()) == 3


def run_cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lpclassify", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=600, check=False)


@pytest.mark.model
@pytest.mark.slow
def test_sigkill_midway_then_resume_matches_an_uninterrupted_run(smollm2: str, tmp_path: Path) -> None:
    """The closing figure: SIGKILL (no clean-up at all) mid-run, --resume, compare row by row."""
    texts = [f"Review {i}: {'loved it, wonderful' if i % 3 else 'awful, a waste of time'} ({i % 7} stars)"
             for i in range(200)]
    (tmp_path / "big.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    argv = ["classify", "-c", str(SENTIMENT), *SMOL, "--batch-size", "1", "-i", "big.txt"]
    process = subprocess.Popen([sys.executable, "-m", "lpclassify", *argv, "-o", "out.jsonl"], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    partial = tmp_path / "out.jsonl.partial"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            if partial.exists() and partial.read_bytes().count(b"\n") >= 40:
                break
            time.sleep(0.01)
        assert process.poll() is None, "the run ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    done = partial.read_bytes().count(b"\n")
    assert 40 <= done < 200 and not (tmp_path / "out.jsonl").exists()
    resumed = run_cli(*argv, "-o", "out.jsonl", "--resume", "--verbose", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{done} input records already done" in resumed.stderr
    whole = run_cli(*argv, "-o", "whole.jsonl", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    got = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    want = [json.loads(line) for line in (tmp_path / "whole.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in got] == texts  # none lost, none twice, in input order
    assert [(r["label"], r["probabilities"]) for r in got] == [(r["label"], r["probabilities"]) for r in want]
    print(f"killed after {done} of 200 rows; resumed: {len(got)} rows, 0 lost, 0 duplicated")


# --------------------------------------------------------------------------- threads and determinism


@pytest.mark.model
def test_four_threads_sharing_one_classifier_match_a_serial_run(small_backend: object) -> None:
    clf = sentiment(small_backend, long_inputs="chunk")
    texts = [f"Take {i}: {'a joy' if i % 2 else 'a bore'}, {'truly' if i % 3 else 'sadly'}." for i in range(12)]
    texts[5] = LONG[: len(LONG) // 2]  # a chunked text among them
    predictions = clf.classify_many(texts)
    assert predictions[5].n_chunks > 1
    serial = [p.probabilities for p in predictions]
    assert [p.probabilities for p in clf.classify_many(texts)] == serial  # run to run: identical, not just close

    fresh = sentiment(small_backend, long_inputs="chunk")  # its calibration state is built by the threads
    results: dict[int, dict[str, float]] = {}
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(offset, len(texts), 4):
                results[i] = fresh.classify(texts[i]).probabilities
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors
    assert [results[i] for i in range(len(texts))] == serial


def test_resume_hint_survives_an_internal_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Even a bug mid-run leaves the rows done so far for --resume (no model: a fake classifier)."""
    from fakes import CharBackend

    monkeypatch.chdir(tmp_path)
    Path("in.txt").write_text("good one\nbad one\ngood two\n", encoding="utf-8")

    def fake(config, request):  # type: ignore[no-untyped-def]
        return Classifier(request.configured(config), CharBackend())

    original = Writer.write

    def write(self: Writer, record: InputRecord, prediction: dict) -> None:
        if self.count >= 2:
            raise ZeroDivisionError("boom")
        original(self, record, prediction)

    monkeypatch.setattr(Writer, "write", write)
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    assert cli.main(["classify", "-c", "sentiment", "-i", "in.txt", "-o", "out.jsonl"], load_classifier=fake) == 1
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError: boom" in err and "2 input records are done" in err
    monkeypatch.setattr(Writer, "write", original)
    assert cli.main(["classify", "-c", "sentiment", "-i", "in.txt", "-o", "out.jsonl", "--resume"],
                    load_classifier=fake) == 0
    assert [json.loads(line)["text"] for line in Path("out.jsonl").read_text().splitlines()] == [
        "good one", "bad one", "good two"]
