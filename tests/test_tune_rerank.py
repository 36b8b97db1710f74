"""``tune`` searching ``scoring.rerank``: a direct setting plus the channel pass of its prompt, in numpy.

The search's probabilities of a rerank setting must be what the written config's classifier computes
(its rerank stage scoring the channel question itself): on the fake backend for the maths, on the real
models (marked ``model``) for the channel pass being the rerank stage's own numbers.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import yaml
from fakes import CharBackend

from lpclassify import Classifier
from lpclassify.cli.tune import summary
from lpclassify.config import load_config
from lpclassify.config.dump import config_yaml
from lpclassify.tuning import Search, Setting, chosen_config, run, tune
from lpclassify.tuning.demos import Variant, variant_config
from lpclassify.tuning.rerank import rerank_pairs
from lpclassify.tuning.run import prompt_scores
from lpclassify.tuning.search import PromptScores, RerankSetting, apply_fit
from lpclassify.tuning.verbalizers import candidates

BASE = {"prompt": "Review: {text}\nSentiment:",
        "labels": {"positive": {"completions": [" positive", " good"]}, "negative": {"completions": [" negative"]},
                   "neutral": None},
        "scoring": {"calibration": "contextual"}}
TEXTS = ([f"good film number {i}" for i in range(10)] + [f"bad film number {i}" for i in range(10)]
         + [f"a film {i}" for i in range(9)])
LABELS = ["positive"] * 10 + ["negative"] * 10 + ["neutral"] * 9


def passes(backend, texts: list[str], channel_labels: tuple[tuple[str, ...], ...] | None = None,  # type: ignore[no-untyped-def]
           ) -> tuple[PromptScores, PromptScores]:
    """The direct pass (every candidate) and the channel pass (``channel_labels``, else tune's own: each
    label's first completion) of BASE's prompt, as tune makes them."""
    config = load_config(BASE)
    direct = prompt_scores(config, backend, config.prompt, candidates(config), texts)
    turned = variant_config(config, [config.prompt], Variant("channel", 0, 0), ())
    per_label = channel_labels or tuple(label.completions for label in turned.labels)
    return direct, prompt_scores(turned, backend, turned.prompt, per_label, texts)


def search_and_classifier(backend, texts: list[str], setting: Setting, bias: tuple[float, ...],  # type: ignore[no-untyped-def]
                          temperature: float, channel_labels: tuple[tuple[str, ...], ...] | None = None,
                          ) -> tuple[np.ndarray, np.ndarray]:
    """The search's log-probabilities of ``setting`` (bias and temperature applied as a fit would) and the
    chosen config's classifier's, on ``texts``."""
    direct, channel = passes(backend, texts, channel_labels)
    y = np.arange(len(texts)) % 3
    search = Search([direct, channel], y, [setting], [[[]] * 3, [[]] * 3], folds=2)
    rows = np.arange(len(texts))
    ours = search.finish(setting, apply_fit(search.log_probs(setting), bias, temperature), rows)
    config = chosen_config(load_config(BASE), direct.prompt, setting, bias, temperature)
    assert config.scoring.rerank is not None and config.scoring.rerank.top == setting.rerank.top  # type: ignore[union-attr]
    clf = Classifier(config, backend)
    return ours, np.log(clf.probabilities(clf.raw_scores(texts)))


@pytest.mark.parametrize("calibration", ["none", "contextual", "batch", "pmi"])
@pytest.mark.parametrize(("top", "weight"), [(2, 0.5), (3, 1.0)])
def test_a_rerank_setting_computes_what_the_written_config_does(calibration: str, top: int, weight: float) -> None:
    setting = Setting(0, "custom", ((" positive",), (" negative",), (" neutral",)), "sum", "logsumexp",
                      calibration, True, RerankSetting(1, top, weight))
    ours, theirs = search_and_classifier(CharBackend(length_penalty=1.0), TEXTS, setting, (0.4, -0.2, 0.1), 0.8)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    plain = Search(list(passes(CharBackend(length_penalty=1.0), TEXTS)), np.zeros(len(TEXTS), int), [setting],
                   [[[]] * 3] * 2, folds=2)
    assert not np.allclose(ours, apply_fit(plain.log_probs(setting), (0.4, -0.2, 0.1), 0.8))  # it did rerank


@pytest.mark.parametrize("aggregate", ["logsumexp", "max"])
def test_several_verbalizations_are_combined_as_the_rerank_stage_combines_them(aggregate: str) -> None:
    """Two completions of one label: the channel's uniform mixture (logsumexp -> log-mean) or its best (max)."""
    setting = Setting(0, "custom", ((" positive", " good"), (" negative",), (" neutral",)), "sum", aggregate,
                      "contextual", False, RerankSetting(1, 2, 0.5))
    ours, theirs = search_and_classifier(CharBackend(length_penalty=1.0), TEXTS, setting, (0.0,) * 3, 1.0,
                                         channel_labels=((" positive", " good"), (" negative",), (" neutral",)))
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


def test_only_what_the_channel_pass_scored_exactly_is_searched() -> None:
    direct, channel = passes(CharBackend(), TEXTS)
    search = Search([direct, channel], np.zeros(len(TEXTS), int), [], [[], []], folds=2)
    covered = Setting(0, "name", ((" positive",), (" negative",), (" neutral",)), "sum", "logsumexp", "none", False,
                      RerankSetting(1, 2, 0.5))
    assert search.can_rerank(covered)
    assert not search.can_rerank(Setting(0, "config", ((" positive", " good"), (" negative",), (" neutral",)),
                                         "sum", "logsumexp", "none", False, RerankSetting(1, 2, 0.5)))  # " good"
    assert not search.can_rerank(Setting(0, "x", ((" positive", "positive"), (" negative",), (" neutral",)),
                                         "sum", "logsumexp", "none", False, RerankSetting(1, 2, 0.5)))  # twice
    config = load_config(BASE)
    variants = [Variant("direct", 0, 0), Variant("direct", 0, 1), Variant("channel", 0, 0)]
    assert rerank_pairs(config, [config.prompt], variants) == {0: 2}
    assert rerank_pairs(config, [config.prompt + " ({labels})"], variants) == {}  # the rerank lists fewer labels
    with_examples = load_config({**BASE, "examples": [{"text": "good", "label": "positive"}]})
    assert rerank_pairs(with_examples, [config.prompt], variants) == {}


def test_tune_searches_reranks_and_writes_and_names_the_one_it_keeps(monkeypatch: pytest.MonkeyPatch) -> None:
    """A config with a rerank is the reference as given (its rerank included); whatever is chosen, the written
    config carries scoring.rerank exactly when the chosen setting has one, and the summary says so."""
    backend = CharBackend(length_penalty=1.0)
    given = load_config({**BASE, "labels": {"positive": None, "negative": None, "neutral": None},
                         "scoring": {"calibration": "contextual", "rerank": {"top": 2, "weight": 0.5}}})
    result = tune(given, backend, TEXTS, LABELS, folds=3, shots=(0,), budget=None)
    assert Variant("channel", 0, 0) in result.variants and not result.skipped
    assert result.base is not None and result.base.rerank == RerankSetting(1, 2, 0.5)
    monkeypatch.setattr(run, "rerank_settings", lambda *args: [])
    without = tune(given, backend, TEXTS, LABELS, folds=3, shots=(0,), budget=None)
    # the reranks come on top of the same direct and channel settings: 3 labels, tops 2 and 3, 3 weights
    assert result.n_settings - without.n_settings > 0 and (result.n_settings - without.n_settings) % 6 == 0
    rerank = result.config.scoring.rerank
    assert (rerank is None) == (result.setting.rerank is None)
    if rerank is not None:
        assert (rerank.top, rerank.weight) == (result.setting.rerank.top, result.setting.rerank.weight)
        assert "reranked by P(input | label)" in summary(result)
        assert result.as_dict()["chosen"]["rerank"] == {"top": rerank.top, "weight": rerank.weight}
    written = load_config(yaml.safe_load(config_yaml(result.config)))
    assert written.scoring.rerank == rerank


@pytest.mark.model
def test_the_channel_pass_is_the_rerank_stages_own_numbers_on_a_real_model(backend) -> None:  # type: ignore[no-untyped-def]
    texts = ["good film, I loved it", "bad film, I hated it", "a film", "the plot was fine but slow"]
    setting = Setting(0, "custom", ((" positive",), (" negative",), (" neutral",)), "sum", "logsumexp",
                      "contextual", True, RerankSetting(1, 2, 0.5))
    ours, theirs = search_and_classifier(backend, texts, setting, (0.3, -0.3, 0.0), 0.9)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9)


class NeutralEcho(CharBackend):
    """CharBackend, plus: after the label "neutral" (channel scoring), a text "a film ..." is much likelier.
    Direct scoring cannot tell the neutral texts apart (every label equal after calibration); a rerank of all
    three labels can."""

    def score(self, texts, *, prefix=()):  # type: ignore[no-untyped-def]
        out = super().score(texts, prefix=prefix)
        for text, row in zip(texts, out, strict=True):
            for i, candidate in enumerate(text.candidates):  # channel: the label, then the text, one candidate
                completion = "".join(map(chr, candidate.tokens))
                if completion.startswith("neutral\n") and "a film" in completion:
                    row[i] = row[i] + 20.0 / len(candidate.tokens)  # the text's share of it is what is scored
        return out


def test_a_kept_rerank_is_written_and_classifies_the_rows_as_the_search_scored_them() -> None:
    """The config's rerank (all three labels) is the only setting that gets the neutral rows right: tune keeps
    it, writes it, and the written config's classifier scores the examples exactly as the search did."""
    backend = NeutralEcho(length_penalty=1.0)
    given = load_config({**BASE, "labels": {"positive": None, "negative": None, "neutral": None},
                         "scoring": {"calibration": "contextual", "rerank": {"top": 3, "weight": 1.0}}})
    result = tune(given, backend, TEXTS, LABELS, folds=3, shots=(0,), budget=None)
    assert result.n_demo_pool == 0 and result.setting == result.base and result.setting.rerank is not None
    assert result.config.scoring.rerank is not None and result.selection.accuracy == 1.0
    assert "then its top 3 labels reranked by P(input | label)" in summary(result)
    clf = result.classifier(backend)
    probs = clf.probabilities(clf.raw_scores(TEXTS))
    y = np.array([list(clf.classes_).index(label) for label in LABELS])
    # fit-free, so the search's cross-validated score is its probabilities on every row
    assert np.mean(probs.argmax(axis=1) == y) == result.selection.accuracy
    assert -np.mean(np.log(probs[np.arange(len(y)), y])) == pytest.approx(result.selection.log_loss, rel=1e-12)
    plain = Classifier(replace(result.config, scoring=replace(result.config.scoring, rerank=None)), backend)
    assert np.mean(plain.probabilities(plain.raw_scores(TEXTS)).argmax(axis=1) == y) < 0.9  # the rerank did it


def test_reranks_that_would_not_fit_the_budget_are_skipped_and_said_so() -> None:
    import time

    from lpclassify.tuning.budget import Budget

    budget = Budget(10.0, time.perf_counter() - 9.0, [5, 5])
    budget.per_setting = 0.01
    assert budget.allows_settings("rerank of the top labels (6 settings)", 50)  # 0.5 s of the 1 s left
    assert not budget.allows_settings("rerank of the top labels (600 settings)", 650)
    assert budget.skipped == [budget.skipped[0]] and budget.skipped[0].startswith("rerank of the top labels (600")
    assert Budget(None, 0.0, [5]).allows_settings("anything", 10**9)
