"""What a new user hit on a fresh clone (issue 23): nothing overwritten, clean errors, no lost feedback.

Each test reproduces one report on the real models (smollm2, in-process through ``load_shared``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import load_shared

from lpclassify import cli
from lpclassify.classifier import Classifier
from lpclassify.config import load_config
from lpclassify.errors import InputError

SMOL = ["--model", "smollm2-135m", "--threads", "1"]


def main(argv: list[str]) -> int:
    return cli.main(argv, load_classifier=load_shared)


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("lpclassify: error: ")]


# --------------------------------------------------------------------------- 1. --resume never replaces a finished file


@pytest.mark.model
def test_resume_without_a_partial_file_leaves_a_complete_output_alone(smollm2: str, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    first = tmp_path / "a.jsonl"
    first.write_text('{"text": "Stocks rallied"}\n{"text": "The match ended 2-1"}\n', encoding="utf-8")
    other = tmp_path / "b.txt"
    other.write_text("great\n", encoding="utf-8")
    out = tmp_path / "d.csv"
    assert main(["classify", "-c", "topic", *SMOL, "-i", str(first), "-o", str(out)]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    status = main(["classify", "-c", "sentiment", *SMOL, "-i", str(other), "-o", str(out), "--resume"])
    assert status == 2
    [line] = error_lines(capsys.readouterr().err)
    assert "complete" in line and "nothing to resume" in line and "without --resume" in line
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "b.txt", "d.csv"]


# --------------------------------------------------------------------------- 4. undecodable text on the command line


@pytest.mark.model
def test_undecodable_argument_is_a_clean_user_error(smollm2: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = b"caf\xe9 ok".decode("utf-8", "surrogateescape")  # what Python makes of such an argv entry
    assert main(["classify", "-c", "sentiment", *SMOL, "fine", text]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert "argument 2" in line and "UTF-8" in line and "0xe9" in line


@pytest.mark.model
def test_undecodable_argument_is_set_aside_with_errors_skip(smollm2: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    text = b"caf\xe9 ok".decode("utf-8", "surrogateescape")
    rejected = tmp_path / "r.jsonl"
    assert main(["classify", "-c", "sentiment", *SMOL, "fine", text, "--errors", "skip",
                 "--rejected", str(rejected)]) == 0
    assert [r["text"] for r in jsonl(capsys.readouterr().out)] == ["fine"]
    [entry] = jsonl(rejected.read_text(encoding="utf-8"))
    assert entry["line"] == 2 and "UTF-8" in entry["reason"]


@pytest.mark.model
def test_classify_refuses_an_unencodable_string_with_input_error(smollm2_backend) -> None:  # type: ignore[no-untyped-def]
    clf = Classifier(load_config("sentiment"), smollm2_backend)
    with pytest.raises(InputError, match="UTF-8"):
        clf.classify("caf\udce9")
    entailment = Classifier(load_config("entailment"), smollm2_backend)
    with pytest.raises(InputError, match="UTF-8"):
        entailment.classify({"premise": "ok", "hypothesis": "caf\udce9"})


# --------------------------------------------------------------------------- 6. blank lines of text input


@pytest.mark.model
def test_blank_lines_of_stdin_are_skipped_and_counted(smollm2: str, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"hello\nworld\n\n  \n")))
    assert main(["classify", "-c", "sentiment", *SMOL]) == 0
    out, err = capsys.readouterr()
    assert [(r["text"]) for r in jsonl(out)] == ["hello", "world"]
    assert "skipped 2 blank lines of <stdin>" in err


@pytest.mark.model
def test_blank_lines_of_a_text_file_keep_the_line_numbers_and_resume(smollm2: str, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.txt"
    source.write_text("great\n\nawful\n", encoding="utf-8")
    assert main(["classify", "-c", "sentiment", *SMOL, "-i", str(source), "-f", "table"]) == 0
    out, err = capsys.readouterr()
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["1", "3"]
    assert "skipped 1 blank line of" in err


@pytest.mark.model
def test_an_empty_field_of_a_jsonl_record_is_still_an_error(smollm2: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "great"}\n{"text": ""}\n', encoding="utf-8")
    assert main(["classify", "-c", "sentiment", *SMOL, "-i", str(source)]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert f"{source}:2:" in line and "empty text" in line


# --------------------------------------------------------------------------- 7. JSON Lines on stdin


@pytest.mark.model
def test_stdin_starting_with_a_brace_is_read_as_json_lines(smollm2: str, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import io

    data = b'{"id": 1, "text": "I loved it"}\n{"id": 2, "text": "Awful"}\n'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(["classify", "-c", "sentiment", *SMOL]) == 0
    out, err = capsys.readouterr()
    rows = jsonl(out)
    assert [(r["id"], r["text"]) for r in rows] == [(1, "I loved it"), (2, "Awful")]
    notices = [line for line in err.splitlines() if "JSON Lines" in line]
    assert len(notices) == 1 and "--input-format txt" in notices[0]
    # asked for, the lines are texts
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(["classify", "-c", "sentiment", *SMOL, "--input-format", "txt"]) == 0
    out, err = capsys.readouterr()
    assert [r["text"] for r in jsonl(out)] == data.decode().splitlines() and "JSON Lines" not in err


# --------------------------------------------------------------------------- 8. every config error at once


def test_every_config_error_is_reported_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "typos.yaml"
    path.write_text("promt: 'Review: {text}\\nSentiment:'\nlabels: [positive, negative]\n"
                    "scoring:\n  calibraton: contextual\n  normalize: summ\n", encoding="utf-8")
    assert cli.main(["validate", str(path)]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 4, lines
    assert all(str(path) in line for line in lines)  # each located: the file and the dotted key
    for key, words in [("promt", "did you mean 'prompt'"), ("prompt", "missing"),
                       ("scoring.calibraton", "did you mean 'calibration'"), ("scoring.normalize", "'summ'")]:
        assert any(f": {key}: " in line and words in line for line in lines), (key, lines)
    from lpclassify.errors import ConfigErrors

    with pytest.raises(ConfigErrors) as caught:
        load_config(path)
    assert [error.key for error in caught.value.errors] == ["promt", "scoring.calibraton", "scoring.normalize",
                                                            "prompt"]


def test_config_errors_past_the_limit_are_counted_not_listed() -> None:
    from lpclassify.config.validate import MAX_ERRORS
    from lpclassify.errors import ConfigErrors

    data = {"prompt": "{text}", "labels": ["a", "b"], **{f"typo{i}": 1 for i in range(MAX_ERRORS + 5)}}
    with pytest.raises(ConfigErrors) as caught:
        load_config(data)
    assert len(caught.value.errors) == MAX_ERRORS and caught.value.more == 5
    assert str(caught.value).splitlines()[-1].endswith("5 more problems not shown; fix these and run again")


def test_classify_prints_each_config_error_on_its_own_line(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "two.yaml"
    path.write_text("prompt: '{text}'\nlabels: [a, b]\ndecision:\n  threshold: 2\nruntime:\n  n_ctx: big\n",
                    encoding="utf-8")
    assert main(["classify", "-c", str(path), "text"]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert [line.split(": ")[3] for line in lines] == ["decision.threshold", "runtime.n_ctx"]


# --------------------------------------------------------------------------- 9. eval's label errors


@pytest.mark.model
@pytest.mark.parametrize(("label", "words"), [
    ("Positive", ["'Positive' is not a label", "did you mean 'positive'?"]),
    ("happy", ["'happy' is not a label", "positive, negative"]),
    (7, ["label index 7 is out of range"]),
])
def test_eval_names_the_file_and_line_of_a_bad_label(label: object, words: list[str], smollm2: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "dev.jsonl"
    records = [{"text": "great", "label": "positive"}, {"text": "awful", "label": "negative"},
               {"text": "fine", "label": "positive"}, {"text": "meh", "label": label}]
    source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    assert main(["eval", "-c", "sentiment", *SMOL, "-i", str(source)]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert f"{source}:4:" in line, line
    assert all(word in line for word in words), line


# --------------------------------------------------------------------------- 10. classify --calibration, --set


@pytest.mark.model
def test_classify_overrides_calibration_and_any_setting(smollm2: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = "An absolute joy from start to finish."
    probabilities = {}
    for extra in ([], ["--calibration", "none"], ["--set", "scoring.calibration=none"]):
        assert main(["classify", "-c", "sentiment", *SMOL, *extra, text]) == 0
        probabilities[" ".join(extra)] = jsonl(capsys.readouterr().out)[0]["probabilities"]
    assert probabilities["--calibration none"] == probabilities["--set scoring.calibration=none"]
    assert probabilities["--calibration none"] != probabilities[""]  # the shipped config calibrates (contextual)
    assert main(["classify", "-c", "sentiment", *SMOL, "--set", "decision.threshold=0.9999", text]) == 0
    assert jsonl(capsys.readouterr().out)[0]["abstained"] is True


@pytest.mark.parametrize(("setting", "words"), [
    ("decision.threshold=1.5", ["decision.threshold", "between 0 and 1"]),
    ("scoring.calibraton=pmi", ["scoring.calibraton", "did you mean 'calibration'"]),
    ("threshold", ["expected KEY=VALUE"]),
])
def test_a_bad_override_is_a_config_message(setting: str, words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "-c", "sentiment", "--set", setting, "text"]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert all(word in line for word in words), line


# --------------------------------------------------------------------------- 14. -c help, README example


@pytest.mark.parametrize("command", ["classify", "explain", "eval", "calibrate", "tune"])
def test_config_help_lists_every_shipped_config(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    from lpclassify.config import shipped_configs

    assert cli.main([command, "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    names = list(shipped_configs())
    assert len(names) >= 7
    listed = help_text.split("name of a shipped config (")[1].split(")")[0]
    assert listed.split(", ") == names


def test_the_readme_shows_no_hand_typed_probabilities() -> None:
    """README figures come from runs; the Python example's probabilities would go stale (0.93 vs 0.908)."""
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    lines = [line for line in readme.splitlines() if line.lstrip().startswith("p.probabilities")]
    assert lines
    assert not any(re.search(r"\d\.\d", line) for line in lines), lines
