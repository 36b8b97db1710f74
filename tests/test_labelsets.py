"""Label sets without a config: ``labels_config``, ``Classifier.from_labels``, ``classify --labels``."""

from __future__ import annotations

import json

import pytest
from conftest import cached_backend, load_shared, model_path
from fakes import CharBackend

from lpclassify import Classifier, cli
from lpclassify.errors import ConfigError
from lpclassify.labelsets import DEFAULT_LABELS_PROMPT, labels_config, split_labels


def test_the_default_prompt_lists_the_labels_and_each_completion_is_the_name() -> None:
    clf = Classifier.from_labels(["urgent", "normal", "spam"], backend=CharBackend())
    prompt, completion = clf.prompts("The server is down")[0]
    assert "- urgent\n- normal\n- spam" in prompt and prompt.rstrip().endswith("Category:")
    assert "The server is down" in prompt and completion == " urgent"
    assert clf.config.prompt == DEFAULT_LABELS_PROMPT and clf.config.scoring.calibration == "contextual"
    assert list(clf.classes_) == ["urgent", "normal", "spam"]


def test_settings_and_a_prompt_are_merged_over_the_defaults() -> None:
    config = labels_config({"yes": {"completions": [" yes", " Yes"]}, "no": {"description": "not at all"}},
                           "Q: {text}\nA:", "smollm2-135m", scoring={"calibration": "none"}, runtime={"n_ctx": 256})
    assert config.prompt == "Q: {text}\nA:" and config.model == "smollm2-135m"
    assert config.labels[0].completions == (" yes", " Yes") and config.labels[1].description == "not at all"
    assert config.scoring.calibration == "none" and config.scoring.aggregate == "logsumexp"
    assert config.runtime.n_ctx == 256
    multi = labels_config(["billing", "bug"], multi_label=True)
    assert multi.decision.mode == "multi" and "{label}" in multi.prompt


@pytest.mark.parametrize(("labels", "message"), [
    ([], "no labels"), (["a", "a"], "given twice"), (["a", " "], "non-empty"), ("a,b", "list of label names"),
    (["only"], "one label"),
])
def test_bad_label_sets_are_config_errors(labels: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        labels_config(labels)  # type: ignore[arg-type]


def test_split_labels() -> None:
    assert split_labels("urgent, normal,spam") == ["urgent", "normal", "spam"]
    with pytest.raises(ConfigError, match="separated by commas"):
        split_labels("a,,b")


@pytest.mark.model
def test_from_labels_on_a_real_model() -> None:
    backend = cached_backend(model_path("smollm2"), 1024, threads=1)
    clf = Classifier.from_labels(["sports", "business"], backend=backend)
    predictions = clf.classify_many(["The striker scored twice in the final", "Shares fell after the earnings call"])
    for p in predictions:
        assert p.label in {"sports", "business"} and sum(p.probabilities.values()) == pytest.approx(1)
    same = Classifier(labels_config(["sports", "business"]), backend).classify_many(["The striker scored twice"])
    assert same[0].probabilities == clf.classify("The striker scored twice").probabilities


@pytest.mark.model
def test_classify_labels_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    model_path("smollm2")
    code = cli.main(["classify", "--labels", "urgent,normal,spam", "--model", "smollm2-135m", "--threads", "1",
                     "The server is down and nobody can pay"], load_classifier=load_shared)
    out, err = capsys.readouterr()
    assert code == 0, err
    record = json.loads(out)
    assert record["label"] in {"urgent", "normal", "spam"} and set(record["probabilities"]) == {"urgent", "normal",
                                                                                                "spam"}


@pytest.mark.parametrize(("argv", "message"), [
    (["classify", "--labels", "a,,b", "x"], "separated by commas"),
    (["classify", "--labels", "a,b", "-c", "sentiment", "x"], "not allowed with"),
    (["classify", "x"], "one of the arguments -c/--config --labels is required"),
])
def test_bad_labels_options_are_one_line_errors(argv: list[str], message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
