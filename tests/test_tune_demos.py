"""``tune`` with demonstrations and direction: which examples go into the prompt, that no scored row is
ever one of them, the channel variants, and the budget. Fake backend (tests/fakes.py): the protocol, not
the model, is under test here; tests/test_tune.py runs the command on a real model.
"""

from __future__ import annotations

import numpy as np
import yaml
from fakes import CharBackend

from lpclassify.config import load_config
from lpclassify.config.dump import config_yaml
from lpclassify.tuning import tune
from lpclassify.tuning.demos import Variant, available_shots, demo_pool, demonstrations

BASE = {"prompt": "Review: {text}\nSentiment:",
        "labels": {"positive": {"completions": [" positive", " good"]}, "negative": {"completions": [" negative"]},
                   "neutral": None},
        "scoring": {"calibration": "contextual"}}
TEXTS = ([f"good film number {i}" for i in range(10)] + [f"bad film number {i}" for i in range(10)]
         + [f"a film {i}" for i in range(9)])
LABELS = ["positive"] * 10 + ["negative"] * 10 + ["neutral"] * 9


def test_demonstrations_are_balanced_round_robin_and_grow_one_per_label() -> None:
    y = np.array([0] * 10 + [1] * 10 + [2] * 4)
    pool = demo_pool(y, 3, 2, seed=0)
    assert [len(found) for found in pool] == [2, 2, 1]  # a label lends at most a third of its rows
    assert all(y[row] == label for label, found in enumerate(pool) for row in found)
    one, two = demonstrations(pool, 1), demonstrations(pool, 2)
    assert [y[r] for r in one] == [0, 1, 2] and [y[r] for r in two] == [0, 1, 2, 0, 1]
    assert two[:3] == one  # k=2 adds to k=1's examples, it does not redraw them
    assert demo_pool(y, 3, 2, seed=0) == pool and demo_pool(y, 3, 2, seed=1) != pool
    assert available_shots(pool, [0, 1, 2, 3, 5]) == [0, 1, 2]


def test_no_scored_row_is_ever_a_demonstration_and_the_written_config_carries_them() -> None:
    result = tune(load_config(BASE), CharBackend(length_penalty=1.0), TEXTS, LABELS, folds=3, budget=None)
    assert {v.shots for v in result.variants} == {0, 1, 2} and {v.direction for v in result.variants} == {
        "direct", "channel"}
    assert result.n_examples + result.n_demo_pool == len(TEXTS) and result.n_demo_pool == 2 + 2 + 2
    assert not result.skipped
    # the chosen variant's examples come from the pool, in round-robin order, and load back from the YAML
    config = result.config
    assert len(config.examples) == len(set(LABELS)) * result.variant.shots
    written = load_config(yaml.safe_load(config_yaml(config)))
    assert [(e.fields, e.labels) for e in written.examples] == [(e.fields, e.labels) for e in config.examples]
    assert written.scoring.direction == result.variant.direction


def test_every_variant_is_scored_on_the_same_rows_none_of_them_a_demonstration(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from lpclassify.tuning import run

    seen: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []
    original = run.prompt_scores

    def spy(config, backend, prompt, per_label, texts, progress=None, **options):  # type: ignore[no-untyped-def]
        seen.append((config.scoring.direction, tuple(e.values["text"] for e in config.examples), tuple(texts)))
        return original(config, backend, prompt, per_label, texts, progress, **options)

    monkeypatch.setattr(run, "prompt_scores", spy)
    tune(load_config(BASE), CharBackend(), TEXTS, LABELS, folds=3, budget=None)
    scored = {texts for _, _, texts in seen}
    assert len(scored) == 1  # every variant: the same rows
    demos = {text for _, examples, _ in seen for text in examples}
    assert demos and not demos & set(next(iter(scored)))
    assert {direction for direction, _, _ in seen} == {"direct", "channel"}


def test_a_small_budget_skips_variants_and_says_which() -> None:
    result = tune(load_config(BASE), CharBackend(), TEXTS, LABELS, folds=3, budget=1e-6)
    assert result.variants == (Variant("direct", 0, 0),)  # the first pass always runs: it measures the rate
    assert len(result.skipped) == 5 and all("budget" in reason for reason in result.skipped)
