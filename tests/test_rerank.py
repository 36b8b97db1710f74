"""``scoring.rerank``: direct scoring's top labels scored again as P(input | label), exact on real models.

The config rules and the product-of-experts maths run on the fake backend; the channel scores of
the rerank stage are held to the oracle and to a full channel config on the real GGUF models.
"""

from __future__ import annotations

import numpy as np
import pytest
from fakes import CharBackend

from lpclassify import Classifier
from lpclassify.config import load_config
from lpclassify.config.direction import as_channel
from lpclassify.config.dump import config_yaml
from lpclassify.errors import ConfigError
from lpclassify.rerank import channel_config, combine

TOPIC = {
    "prompt": "Classify the news article by its topic.\n\nArticle: {text}\nTopic:",
    "labels": {"sports": {"completions": [" Sports", " Football"]}, "business": {"completions": [" Business"]},
               "world": {"completions": [" World"]}, "science": {"completions": [" Science"]}},
    "scoring": {"rerank": {"top": 2, "weight": 0.5}},
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
    ({"scoring": {"rerank": {"top": 1}}}, "scoring.rerank.top", "integer >= 2"),
    ({"scoring": {"rerank": {"top": 5}}}, "scoring.rerank.top", "4 labels"),
    ({"scoring": {"rerank": {"weight": -1}}}, "scoring.rerank.weight", "between 0"),
    ({"scoring": {"rerank": {"topk": 3}}}, "scoring.rerank.topk", "did you mean 'top'"),
    ({"scoring": {"rerank": 3}}, "scoring.rerank", "expected a mapping"),
    ({"scoring": {"direction": "channel", "calibration": "none"},
      "prompt": "Topic: {label}\nArticle: {text}"}, "scoring.rerank", "already scores that way"),
    ({"decision": {"mode": "multi"}, "prompt": "Is this about {label}? {text}"}, "scoring.rerank", "single-label"),
    ({"prompt": {"user": "Article: {text}\nTopic:"}}, "scoring.rerank", "plain template"),
    ({"labels": {"yes": {"completions": [" yes", "yes"]}, "no": None}}, "labels.yes.completions", "twice"),
])
def test_a_rerank_that_cannot_run_is_a_config_error(changes, key, words) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as error:
        load_config(config(**changes))
    assert key in str(error.value) and words in str(error.value)


def test_rerank_is_written_back_and_loads_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.yaml"
    path.write_text(config_yaml(load_config(TOPIC)))
    assert load_config(path).scoring.rerank == load_config(TOPIC).scoring.rerank
    assert load_config({**TOPIC, "scoring": {}}).scoring.rerank is None


def test_the_channel_stage_is_the_prompt_turned_round_without_calibration() -> None:
    turned = channel_config(load_config(TOPIC))
    assert turned.prompt == "Classify the news article by its topic.\n\nTopic: {label}\nArticle: {text}"
    assert turned.scoring.channel and turned.scoring.calibration == "none" and turned.scoring.rerank is None


# ---------------------------------------------------------------- the maths


def test_reranked_labels_share_their_direct_probability_by_the_product_of_experts() -> None:
    probs = np.array([[0.5, 0.3, 0.15, 0.05]])
    channel = np.array([[-6.0, -2.0, np.nan, np.nan]])
    out = combine(probs, channel, 0.5)
    assert out[0, 2:].tolist() == [0.15, 0.05]  # not reranked: unchanged
    assert np.isclose(out[0, :2].sum(), 0.8)  # the top's share is kept
    score = np.log([0.5, 0.3]) + 0.5 * np.array([-6.0, -2.0])
    assert np.allclose(out[0, :2], 0.8 * np.exp(score) / np.exp(score).sum())
    assert out.argmax() == 1  # the channel turned the decision
    assert np.allclose(combine(probs, channel, 0.0), probs)  # weight 0: direct scoring alone


def test_each_texts_top_labels_get_the_channel_scores_of_a_channel_config() -> None:
    clf = Classifier(load_config(TOPIC), CharBackend())
    raw = clf.raw_scores(TEXTS)
    direct = clf.calibrator.probabilities(raw)
    assert raw.rerank is not None and (np.isfinite(raw.rerank).sum(axis=1) == 2).all()
    for row, probs in zip(raw.rerank, direct, strict=True):  # the two most probable labels, no other
        assert set(np.flatnonzero(np.isfinite(row))) == set(np.argsort(-probs)[:2])
    channel = Classifier(as_channel(load_config({**TOPIC, "scoring": {"calibration": "none"}})), CharBackend())
    full = channel.calibrator.trace(channel.raw_scores(TEXTS)).label_scores
    reranked = np.isfinite(raw.rerank)
    assert np.array_equal(raw.rerank[reranked], full[reranked])
    probs = clf.probabilities(raw)
    assert np.allclose(probs, combine(direct, raw.rerank, 0.5))
    assert [p.label for p in clf.classify_many(TEXTS)] == [clf.classes_[i] for i in probs.argmax(axis=1)]
    # another method (eval --compare's rows) is direct scoring's alone
    assert np.array_equal(clf.probabilities(raw, method="contextual"), direct)


def test_eval_measures_the_config_as_it_decides() -> None:
    from lpclassify.evaluation import evaluate

    clf = Classifier(load_config(TOPIC), CharBackend())
    labels = [p.label for p in clf.classify_many(TEXTS)]
    assert evaluate(clf, TEXTS, labels).accuracy == 1.0
    raw = clf.raw_scores(TEXTS)
    direct = [clf.classes_[i] for i in clf.calibrator.probabilities(raw).argmax(axis=1)]
    assert evaluate(clf, TEXTS, labels, raw=raw, method="contextual").accuracy == \
        np.mean(np.array(direct) == np.array(labels))


def test_explain_shows_the_rerank_and_decides_as_classify(capsys) -> None:  # type: ignore[no-untyped-def]
    from lpclassify.cli.explain import print_explanation

    clf = Classifier(load_config(TOPIC), CharBackend())
    report = clf.explain(TEXTS[3]).as_dict()
    assert report["rerank"]["weight"] == 0.5 and len(report["rerank"]["labels"]) == 2
    assert report["rerank"]["prompt"].startswith("Classify the news article by its topic.\n\nTopic: {label}")
    assert report["prediction"]["label"] == clf.classify(TEXTS[3]).label
    print_explanation(report)
    shown = capsys.readouterr().out
    assert "rerank: the 2 most likely labels" in shown and "p after rerank" in shown


def test_the_server_answers_as_classify_many() -> None:
    from lpclassify.serve.inference import run_batch

    clf = Classifier(load_config(TOPIC), CharBackend())
    served = [p for job in run_batch(clf, [TEXTS[:2], TEXTS[2:]]) for p in job.predictions]
    assert [(p.label, p.probabilities) for p in served] == \
        [(p.label, p.probabilities) for p in clf.classify_many(TEXTS)]


def test_top_k_search_falls_back_to_exhaustive_scoring() -> None:
    from lpclassify.top_k import searchable

    assert "rerank" in (searchable(load_config(config(scoring={"search": "top_k"}))) or "")


# ---------------------------------------------------------------- real models: exact


@pytest.mark.model
def test_rerank_scores_of_the_engine_equal_the_oracle_and_a_channel_config(backend) -> None:  # type: ignore[no-untyped-def]
    clf = Classifier(load_config(TOPIC), backend)
    fast = clf.raw_scores(TEXTS)
    oracle = clf.raw_scores(TEXTS, reference=True)
    assert fast.rerank is not None and oracle.rerank is not None
    assert np.array_equal(np.isfinite(fast.rerank), np.isfinite(oracle.rerank))
    assert np.array_equal(fast.rerank, oracle.rerank, equal_nan=True), \
        f"rerank engine differs from the oracle by up to {np.nanmax(np.abs(fast.rerank - oracle.rerank)):.2e} nats"
    channel = Classifier(as_channel(load_config({**TOPIC, "scoring": {"calibration": "none"}})), backend)
    full = channel.calibrator.trace(channel.raw_scores(TEXTS)).label_scores
    reranked = np.isfinite(fast.rerank)
    assert np.array_equal(fast.rerank[reranked], full[reranked])  # the same numbers, scored for fewer labels


def test_demonstrations_render_in_every_rerank_as_in_the_whole_channel_config() -> None:
    # a demonstration whose label is not among a text's top labels still shows its own answer
    examples = [{"text": "The keeper saved a penalty in the last minute.", "label": "sports"},
                {"text": "The central bank raised interest rates again.", "label": "business"}]
    clf = Classifier(load_config(config(examples=examples)), CharBackend())
    raw = clf.raw_scores(TEXTS)
    assert raw.rerank is not None
    assert any(not np.isfinite(row[0]) for row in raw.rerank)  # some texts' top two leave out "sports"
    plain = {**TOPIC, "examples": examples, "scoring": {"calibration": "none"}}
    channel = Classifier(as_channel(load_config(plain)), CharBackend())
    full = channel.calibrator.trace(channel.raw_scores(TEXTS)).label_scores
    reranked = np.isfinite(raw.rerank)
    assert np.array_equal(raw.rerank[reranked], full[reranked])
