"""Channel scoring (``scoring.direction: channel``): P(input | label), exact on real models.

The config rules and the maths run on the fake backend; exactness (engine == oracle) and the
cuts that keep a long input within one decode's logit rows run on the real GGUF models.
"""

from __future__ import annotations

import numpy as np
import pytest
from fakes import CharBackend

from lpclassify import Classifier
from lpclassify.config import load_config
from lpclassify.config.dump import config_yaml
from lpclassify.errors import ConfigError, InputError
from lpclassify.normalize import aggregate

TOPIC = {
    "prompt": "Classify the news article by its topic.\n\nTopic: {label}\nArticle: {text}",
    "labels": {"sports": {"completions": [" Sports", " Football"]}, "business": {"completions": [" Business"]},
               "world": {"completions": [" World"]}},
    "scoring": {"direction": "channel"},
}
TEXTS = ["The striker scored twice as the home side won the cup final.",
         "Shares fell after the bank cut its profit forecast for the year.",
         "Ceasefire talks resume in Geneva as both sides trade accusations.",
         "ok"]


def config(**changes: object) -> dict:
    out = {**TOPIC, **changes}
    if "scoring" in changes:
        out["scoring"] = {**TOPIC["scoring"], **changes["scoring"]}  # type: ignore[dict-item]
    return out


# ---------------------------------------------------------------- config rules


@pytest.mark.parametrize(("changes", "key", "words"), [
    ({"prompt": "Article: {text}\nTopic:"}, "prompt", "put {label}"),
    ({"prompt": "Article: {text}\nTopic: {label}"}, "prompt", "{label} comes before {text}"),
    ({"prompt": "{label} {label}: {text}"}, "prompt", "once"),
    ({"scoring": {"calibration": "contextual"}}, "scoring.calibration", "not a label prior"),
    ({"scoring": {"calibration": "domain"}}, "scoring.calibration", "not a label prior"),
    ({"scoring": {"calibration": "pmi"}}, "scoring.calibration", "already is"),
    ({"scoring": {"normalize": "chars"}}, "scoring.normalize", "sum or mean"),
    ({"decision": {"mode": "multi"}}, "scoring.direction", "single-label"),
    ({"prompt": {"user": "Topic: {label}\nArticle: {text}"}}, "prompt", "plain template"),
    ({"labels": {"yes": {"completions": [" yes", "yes"]}, "no": None}}, "labels.yes.completions", "twice"),
    ({"search": {"prompts": ["Article: {text}"]}}, "search.prompts.0", "put {label}"),
])
def test_settings_channel_scoring_cannot_honour_are_config_errors(changes, key, words) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as error:
        load_config(config(**changes))
    assert key in str(error.value) and words in str(error.value)


def test_label_placeholder_needs_channel_scoring_in_single_label_mode() -> None:
    with pytest.raises(ConfigError, match=r"unknown placeholder \{label\}"):
        load_config({**TOPIC, "scoring": {"direction": "direct"}})


@pytest.mark.parametrize("calibration", ["none", "fitted", "batch"])
def test_channel_allows_calibrations_that_mean_a_label_prior(calibration: str) -> None:
    loaded = load_config(config(scoring={"calibration": calibration, "normalize": "mean"}))
    assert loaded.scoring.direction == "channel" and loaded.scoring.calibration == calibration


def test_direction_is_written_back_and_loads_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    loaded = load_config(config(examples=[{"text": "Goal!", "label": "sports"}]))
    path = tmp_path / "topic.yaml"
    path.write_text(config_yaml(loaded))
    again = load_config(path)
    assert "direction: channel" in path.read_text()
    assert (again.scoring, again.prompt, again.examples) == (loaded.scoring, loaded.prompt, loaded.examples)
    assert "direction" not in config_yaml(load_config({"prompt": "{text} ->", "labels": ["a", "b"]}))


# ---------------------------------------------------------------- prompts and maths (fake backend)


def test_each_label_names_itself_before_the_input_and_demonstrations_do_the_same() -> None:
    clf = Classifier(load_config(config(examples=[{"text": "Goal!", "label": "sports"}])), CharBackend())
    pairs = clf.prompts("Stocks fell.")
    head = "Classify the news article by its topic.\n\nTopic: Sports\nArticle: Goal!\n\n"
    assert pairs[0] == (head + "Classify the news article by its topic.\n\nTopic: Sports\nArticle: ", "Stocks fell.")
    assert [prompt.rsplit("Topic: ", 1)[1] for prompt, _ in pairs] == [
        "Sports\nArticle: ", "Football\nArticle: ", "Business\nArticle: ", "World\nArticle: "]
    assert {completion for _, completion in pairs} == {"Stocks fell."}
    # the pinned prefix ends before the label: every label's prompt starts with it
    assert clf.scorer.prefix == tuple(CharBackend().tokenize(head + "Classify the news article by its topic."
                                                             "\n\nTopic: ", False))


PAIRS = {
    "prompt": "{premise} {label} {hypothesis}",
    "labels": {"entailment": {"completions": [" In other words,"]},
               "not_entailment": {"completions": [" On the contrary,"]}},
    "examples": [{"premise": "It rained.", "hypothesis": "It was wet.", "label": "entailment"}],
    "example_separator": "\n",
    "scoring": {"direction": "channel"},
}


def test_a_field_before_the_label_is_context_and_only_the_fields_after_it_are_scored() -> None:
    clf = Classifier(load_config(PAIRS), CharBackend())
    pairs = clf.prompts({"premise": "The dog sleeps.", "hypothesis": "The dog runs."})
    assert pairs == [("It rained. In other words, It was wet.\nThe dog sleeps. In other words, ", "The dog runs."),
                     ("It rained. In other words, It was wet.\nThe dog sleeps. On the contrary, ", "The dog runs.")]
    # the pinned prefix ends where the input's first field (the premise) starts
    assert clf.scorer.prefix == tuple(CharBackend().tokenize("It rained. In other words, It was wet.\n", False))
    raw = clf.raw_scores([{"premise": "The dog sleeps.", "hypothesis": "The dog runs."},
                          {"premise": "A much longer premise than the other one.", "hypothesis": "The dog runs."}])
    assert raw.n_tokens.tolist() == [[len(" The dog runs.")] * 2] * 2  # the premise's length changes nothing scored


def test_a_long_premise_before_the_label_is_kept_whole_and_a_long_hypothesis_is_refused() -> None:
    # the premise is in the prompt, so the 127 tokens a decode reads for what is scored do not bound it
    clf = Classifier(load_config({**PAIRS, "runtime": {"shorten_field": "premise"}}), CharBackend())
    raw = clf.raw_scores([{"premise": "It rained. " * 30, "hypothesis": "The dog runs."}])
    assert not raw.truncated[0] and raw.n_tokens.tolist() == [[len(" The dog runs.")] * 2]
    with pytest.raises(InputError, match="shorten_field to a field after it"):
        clf.raw_scores([{"premise": "It rained.", "hypothesis": "x" * 200}])


def test_a_label_after_every_input_field_is_still_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"\{label\} comes before \{hypothesis\}"):
        load_config({**PAIRS, "prompt": "{premise} {hypothesis} {label}"})


def test_every_label_scores_the_same_input_tokens() -> None:
    clf = Classifier(load_config(TOPIC), CharBackend())
    raw = clf.raw_scores(TEXTS)
    assert raw.logprobs.shape == (len(TEXTS), 4)
    assert all(len(set(row)) == 1 for row in raw.n_tokens.tolist())
    assert raw.n_tokens[:, 0].tolist() == [len(" " + text) for text in TEXTS]


def test_a_labels_verbalizations_are_a_mixture_not_a_sum() -> None:
    # two verbalizations that each give the input log-prob -3 mean p(x | label) = e^-3, not 2 e^-3
    scores = np.array([[-3.0, -3.0, -3.0]])
    assert aggregate(scores, [0, 0, 1], 2, "logmeanexp").tolist() == [[-3.0, -3.0]]
    clf = Classifier(load_config(TOPIC), CharBackend())
    probs = clf.probabilities(clf.raw_scores(TEXTS[:1]))
    raw = clf.raw_scores(TEXTS[:1]).logprobs[0]
    expected = np.exp([np.log(np.exp(raw[:2]).mean()), raw[2], raw[3]])
    assert np.allclose(probs[0], expected / expected.sum())


def test_a_calibration_override_that_makes_no_sense_for_channel_is_refused() -> None:
    clf = Classifier(load_config(TOPIC), CharBackend())
    raw = clf.raw_scores(TEXTS[:1])
    with pytest.raises(ConfigError, match="contextual calibration does not apply"):
        clf.probabilities(raw, method="contextual")


# ---------------------------------------------------------------- real models: exact, and within one decode


@pytest.mark.model
def test_channel_scores_of_the_engine_equal_the_oracle(backend) -> None:  # type: ignore[no-untyped-def]
    # with demonstrations, so the pinned prefix is long and every label's branch starts inside it
    examples = [{"text": "Oil prices climbed as supply fears grew.", "label": "business"},
                {"text": "The champions lost at home for the first time in a year.", "label": "sports"}]
    clf = Classifier(load_config(config(examples=examples)), backend)
    assert len(backend.pinnable(clf.scorer.prefix)) >= 16  # a real prefix is reused
    fast = clf.raw_scores(TEXTS)
    oracle = clf.raw_scores(TEXTS, reference=True)
    pairs = [(f, o) for frow, orow in zip(fast.scores, oracle.scores, strict=True)
             for f, o in zip(frow, orow, strict=True)]
    worst = max(float(np.abs(np.subtract(f.token_logprobs, o.token_logprobs)).max()) for f, o in pairs)
    # bit for bit, as tests/test_backend.py holds the engine to the oracle for direct scoring
    assert all(np.array_equal(f.token_logprobs, o.token_logprobs) for f, o in pairs), \
        f"channel engine differs from the oracle by up to {worst:.2e} nats"
    assert np.array_equal(fast.logprobs, oracle.logprobs) and np.array_equal(fast.n_tokens, oracle.n_tokens)
    assert (fast.n_tokens[:, 0] >= 1).all()


@pytest.mark.model
def test_pair_channel_scores_of_the_engine_equal_the_oracle(backend) -> None:  # type: ignore[no-untyped-def]
    # the premise sits between the pinned prefix and the label: conditioned on, never scored
    clf = Classifier(load_config(PAIRS), backend)
    pairs = [{"premise": "The dog is sleeping on the sofa.", "hypothesis": "The dog is running in the park."},
             {"premise": "A man is riding a bicycle down a busy street.", "hypothesis": "A man is on a bike."}]
    fast, oracle = clf.raw_scores(pairs), clf.raw_scores(pairs, reference=True)
    assert all(np.array_equal(f.token_logprobs, o.token_logprobs)
               for frow, orow in zip(fast.scores, oracle.scores, strict=True)
               for f, o in zip(frow, orow, strict=True))
    hypothesis = [len(backend.tokenize(" " + p["hypothesis"], False)) for p in pairs]
    assert fast.n_tokens.tolist() == [[n, n] for n in hypothesis]


@pytest.mark.model
def test_channel_prefers_the_label_that_explains_the_input(gemma_backend) -> None:  # type: ignore[no-untyped-def]
    clf = Classifier(load_config(TOPIC), gemma_backend)
    assert [p.label for p in clf.classify_many(TEXTS[:2])] == ["sports", "business"]


@pytest.mark.model
def test_a_long_input_is_cut_to_what_one_decode_can_read(smollm2_backend) -> None:  # type: ignore[no-untyped-def]
    clf = Classifier(load_config(TOPIC), smollm2_backend)
    long_text = " ".join(["The match went to extra time and then to penalties."] * 40)
    raw = clf.raw_scores([long_text])
    assert bool(raw.truncated[0])
    assert 0 < raw.n_tokens[0, 0] < smollm2_backend.max_outputs
    assert np.isfinite(raw.logprobs).all()


@pytest.mark.model
def test_explain_says_the_direction_and_shows_the_inputs_tokens(smollm2_backend, capsys) -> None:  # type: ignore[no-untyped-def]
    from lpclassify.cli.explain import print_explanation

    clf = Classifier(load_config(TOPIC), smollm2_backend)
    report = clf.explain(TEXTS[0]).as_dict()
    assert report["config"]["direction"] == "channel"
    tokens = "".join(t["text"] for t in report["completions"][0]["tokens"])
    assert tokens.strip() == TEXTS[0]
    print_explanation(report)
    shown = capsys.readouterr().out
    assert "direction=channel" in shown and "log P(input | label)" in shown
