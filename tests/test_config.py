"""Config validation: every mistake is a ConfigError naming file, dotted key and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from lpclassify.config import DEFAULT_MULTI_PROMPT, load_config, parse_config
from lpclassify.errors import ConfigError

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

BASE = {"prompt": "Review: {text}\nSentiment:", "labels": {"positive": None, "negative": None}}


def with_(**changes):  # type: ignore[no-untyped-def]
    data = {**BASE, **changes}
    return {k: v for k, v in data.items() if v is not ...}


def error_of(data, source: str = "<mapping>") -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        parse_config(data, source=source)
    return str(info.value)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path) -> None:
    config = load_config(path)
    assert config.labels and config.source == str(path)
    assert config.fields and all(name in "".join(config.templates) for name in config.fields)


def test_minimal_config_gets_documented_defaults() -> None:
    config = parse_config(BASE)
    assert config.label_names == ("positive", "negative")
    assert config.labels[0].completions == (" positive",)
    assert config.prompt == "Review: {text}\nSentiment:"
    assert (config.scoring.normalize, config.scoring.aggregate, config.scoring.calibration) == (
        "sum", "logsumexp", "contextual")
    assert (config.decision.mode, config.decision.threshold, config.decision.top_k) == ("single", 0.0, 1)
    assert config.model == "default"


def test_label_list_shorthand() -> None:
    config = parse_config(with_(labels=["world", "sports"]))
    assert [label.completions for label in config.labels] == [(" world",), (" sports",)]


def test_yaml_block_trailing_newline_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("prompt: |\n  Review: {text}\n  Sentiment:\nlabels: [a, b]\n")
    assert load_config(path).prompt == "Review: {text}\nSentiment:"


@pytest.mark.parametrize(("data", "message"), [
    (with_(lables={"a": None}), "<mapping>: lables: unknown key; did you mean 'labels'?"),
    (with_(scoring={"normalise": "sum"}), "<mapping>: scoring.normalise: unknown key; did you mean 'normalize'?"),
    (with_(scoring={"normalize": "avg"}), "<mapping>: scoring.normalize: expected one of sum, mean, chars, got 'avg'"),
    (with_(prompt="Review: {labels}"), "<mapping>: prompt: the template must contain {text} (or other fields of the "
                                       "input, such as {premise}), where the input goes"),
    (with_(prompt="Review:"), "<mapping>: prompt: the template must contain {text} (or other fields of the input, "
                              "such as {premise}), where the input goes"),
    (with_(prompt=...), "<mapping>: prompt: missing; expected a template string (or chat messages)"),
    (with_(labels={"a": {"completions": "x"}, "b": {"completions": 3}}),
     "<mapping>: labels.b.completions: expected a list of strings"),
    (with_(labels={"a": {"completions": []}}), "<mapping>: labels.a.completions: expected a non-empty list of strings"),
    (with_(labels={"a": {"completions": [" x"]}, "b": {"completions": [" y", " x"]}}),
     "<mapping>: labels.b.completions: ' x' is also a completion of label 'a'; a completion must belong to one label"),
    (with_(labels={"a": {"completions": ["  "]}}),
     "<mapping>: labels.a.completions: a completion must contain more than whitespace"),
    (with_(labels=["a", "a"]), "<mapping>: labels: duplicate label 'a'"),
    (with_(labels={True: None, "b": None}),
     "<mapping>: labels: label names must be strings, got a boolean True; quote it in YAML, e.g. 'true':"),
    (with_(decision={"threshold": 1.5}), "<mapping>: decision.threshold: expected a number between 0 and 1, got 1.5"),
    (with_(decision={"top_k": 3}), "<mapping>: decision.top_k: expected an integer >= 1 and <= 2, got 3"),
    (with_(decision={"mode": "multiple"}),
     "<mapping>: decision.mode: expected one of single, multi, got 'multiple'; did you mean 'multi'?"),
    (with_(runtime={"n_ctx": "big"}),
     "<mapping>: runtime.n_ctx: expected an integer >= 64 and <= 131072, got a string"),
    (with_(model=""), "<mapping>: model: expected a model name or a path to a .gguf file, got an empty string"),
    ([1, 2], "<mapping>: expected a mapping, got a list"),
])
def test_invalid_configs_say_where_and_what(data, message: str) -> None:  # type: ignore[no-untyped-def]
    assert error_of(data).splitlines()[0] == message  # the first problem reported (others may follow it)


def test_yaml_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("prompt: 'Review: {text}'\nlabels: [a, b\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid YAML: line 3, column 1"):
        load_config(path)


def test_duplicate_yaml_keys_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("prompt: 'Review: {text}'\nlabels:\n  a: {}\n  a: {}\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'a' \(first at line 3\)"):
        load_config(path)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: file not found; check the path"):
        load_config(tmp_path / "nope.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="the file is empty"):
        load_config(empty)


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("prompt: !!python/object/apply:os.system ['echo hi']\nlabels: [a]\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(path)


def test_multi_label_mode_defaults_and_unquoted_yes_no_keys(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("labels: [billing, bug]\ndecision:\n  mode: multi\n  multi:\n    yes: [' Y']\n    no: [' N']\n")
    config = load_config(path)
    assert config.prompt == DEFAULT_MULTI_PROMPT
    assert (config.decision.multi.yes, config.decision.multi.no) == ((" Y",), (" N",))
    assert config.decision.threshold == 0.5


def test_multi_label_template_may_name_the_label_but_single_may_not() -> None:
    assert error_of(with_(prompt="Is {text} about {label}?")).endswith(
        "prompt: unknown placeholder {label}: single-label mode fills {labels}; did you mean {labels}? "
        "(or set scoring.direction: channel, where {label} names the label before the input)")
    config = parse_config(with_(prompt="Is {text} about {label}?", decision={"mode": "multi"}))
    assert config.prompt == "Is {text} about {label}?"


SHARED = {"mode": "multi", "multi": {"scoring": "shared", "none": "neutral"}}


def test_multi_label_with_one_shared_question_is_scored_as_single_label() -> None:
    config = parse_config(with_(labels={"positive": None, "negative": None, "neutral": None}, decision=SHARED))
    assert (config.decision.mode, config.decision.score_mode) == ("multi", "single")
    assert (config.decision.multi.scoring, config.decision.multi.none) == ("shared", "neutral")
    assert config.decision.threshold == 0.5
    # the shared question is asked once, so it cannot name one label; a prompt is needed (no per-label default)
    assert "unknown placeholder {label}" in error_of(with_(prompt="Is {text} about {label}?", decision=SHARED))
    assert "prompt: missing" in error_of(with_(prompt=..., decision=SHARED))


@pytest.mark.parametrize(("multi", "message"), [
    ({"scoring": "shared", "none": "neutrl"}, "decision.multi.none: 'neutrl' is not one of the labels; "
                                              "did you mean 'neutral'?"),
    ({"none": "neutral"}, "decision.multi.none: names the label that stands for 'none of these', which only "
                          "scoring: shared has"),
    ({"scoring": "shared", "yes": [" y"]}, "decision.multi.yes: yes/no answers belong to scoring: questions"),
    ({"scoring": "both"}, "decision.multi.scoring: expected one of questions, shared"),
])
def test_shared_multi_label_mistakes_are_named(multi: dict, message: str) -> None:
    labels = {"positive": None, "negative": None, "neutral": None}
    assert message in error_of(with_(labels=labels, decision={"mode": "multi", "multi": multi}))


def test_config_objects_are_immutable() -> None:
    config = parse_config(BASE)
    with pytest.raises(AttributeError):
        config.prompt = "x"  # type: ignore[misc]


def test_labels_file_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "intents.txt").write_text("# intents\ncard not arrived: card not arrived | card never came\n"
                                          "\nrefund request\n", encoding="utf-8")
    path = tmp_path / "c.yaml"
    path.write_text('prompt: "Message: {text}\\nIntent:"\nlabels: intents.txt\n', encoding="utf-8")
    config = load_config(path)
    assert [(label.name, label.completions) for label in config.labels] == [
        ("card not arrived", (" card not arrived", " card never came")), ("refund request", (" refund request",))]


@pytest.mark.parametrize(("lines", "message"), [
    ("a\nb\na\n", r"intents\.txt:3: label 'a' is listed twice \(first at line 1\)"),
    ("a: x\nb: x\n", r"intents\.txt:2: labels\.b\.completions: ' x' is also a completion of label 'a'"),
    ("a: x |  | y\n", r"intents\.txt:1: label 'a': an empty completion"),
    (": x\n", r"intents\.txt:1: expected a label name before ':'"),
    ("# only a comment\n", r"labels: labels file .*intents\.txt holds no labels"),
])
def test_labels_file_errors_name_the_file_and_line(tmp_path: Path, lines: str, message: str) -> None:
    (tmp_path / "intents.txt").write_text(lines, encoding="utf-8")
    path = tmp_path / "c.yaml"
    path.write_text('prompt: "{text} ->"\nlabels: intents.txt\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_a_missing_labels_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text('prompt: "{text} ->"\nlabels: nope.txt\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c\.yaml: labels: labels file .*nope\.txt not found"):
        load_config(path)
