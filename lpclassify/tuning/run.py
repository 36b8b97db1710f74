"""``tune``: score the candidates once per prompt, search, estimate honestly, and build the chosen config.

>>> from lpclassify.tuning import tune                                          # doctest: +SKIP
>>> result = tune(load_config("questions.yaml"), backend, texts, labels, folds=5)  # doctest: +SKIP
>>> result.estimate.accuracy, result.config.scoring.calibration                # doctest: +SKIP
(0.71, 'contextual')

The model runs once per prompt (the config's and those under ``search.prompts``) over the
labelled texts, with every verbalizer candidate of every label in one trie, plus the
content-free inputs and the empty text (cached reference scores). Everything after is numpy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..backends.base import Backend
from ..calibration import fit_bias_temperature, label_indices
from ..classifier import Classifier
from ..config import AGGREGATIONS, NORMALIZATIONS, Config
from ..config.dump import prompt_data
from ..config.schema import PromptTemplate
from ..errors import ConfigError, InputError
from ..evaluation import score_texts
from .search import CALIBRATIONS, OuterFold, PromptScores, Score, Search, Setting, nested_estimate, settings_for
from .verbalizers import candidate_config, candidates, label_options, styles

DEFAULT_FOLDS = 5
MIN_EXAMPLES = 10
Progress = Callable[[str, int, int], None]  # (phase, done, total): phase "prompt i/n" while scoring, "search"


@dataclass(frozen=True)
class TuneResult:
    """What ``tune`` chose and how well it is expected to do."""

    config: Config  # the chosen config, bias and temperature included
    setting: Setting
    estimate: Score  # nested cross-validation: the whole procedure scored on folds it never saw
    selection: Score  # the chosen setting's cross-validated score on all examples (optimistic: a maximum)
    baseline: Score | None  # the base config as it is, on all examples (None: its calibration needs labels/data)
    outer: list[OuterFold]
    prompts: tuple[PromptTemplate, ...]
    n_examples: int
    folds: int
    n_settings: int
    seconds: float
    bias: tuple[float, ...]
    temperature: float

    def as_dict(self) -> dict[str, Any]:
        def score(s: Score | None) -> dict[str, float] | None:
            return None if s is None else {"accuracy": s.accuracy, "log_loss": s.log_loss}

        return {
            "n_examples": self.n_examples, "folds": self.folds, "settings_searched": self.n_settings,
            "seconds": self.seconds, "estimate": score(self.estimate),
            "estimate_protocol": f"nested {self.folds}-fold cross-validation: in each outer fold the whole search "
                                 "ran on the other folds and its winner was scored on this fold",
            "selection_cv": score(self.selection), "baseline": score(self.baseline),
            "chosen": {"prompt_index": self.setting.prompt, "prompt": prompt_data(self.prompts[self.setting.prompt]),
                       "verbalizer": self.setting.verbalizer,
                       "completions": {label.name: list(label.completions) for label in self.config.labels},
                       "normalize": self.setting.normalize, "aggregate": self.setting.aggregate,
                       "calibration": self.setting.calibration, "fitted": self.setting.fit,
                       "bias": list(self.bias), "temperature": self.temperature},
            "outer_folds": [{"n": len(f.test_rows), "chosen": f.chosen.describe(), "inner_cv": score(f.inner),
                             "held_out": score(f.held_out)} for f in self.outer],
            "prompts": [prompt_data(p) for p in self.prompts],
        }


def prompt_scores(config: Config, backend: Backend, prompt: PromptTemplate, per_label: tuple[tuple[str, ...], ...],
                  texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> PromptScores:
    """One model pass: every candidate of every label after ``prompt``, on ``texts`` and the reference texts."""
    clf = Classifier(candidate_config(config, prompt, per_label), backend)
    raw = score_texts(clf, texts, progress=progress)
    content_free = clf.reference_scores(config.scoring.content_free)
    neutral = clf.neutral_scores()
    columns = tuple((slot.label, slot.completion) for slot in clf.scorer.slots)
    return PromptScores(prompt, columns, raw.logprobs, raw.n_tokens, content_free.logprobs, content_free.n_tokens,
                        neutral.logprobs[0])


def _first(preferred: str, choices: Sequence[str]) -> list[str]:
    return [preferred, *(c for c in choices if c != preferred)] if preferred in choices else list(choices)


def tune(config: Config, backend: Backend, texts: Sequence[str], labels: Sequence[Any], *,
         folds: int = DEFAULT_FOLDS, seed: int = 0, progress: Progress | None = None) -> TuneResult:
    """Choose a prompt, verbalizers, normalization, aggregation and calibration for ``config`` (see the module)."""
    started = time.perf_counter()
    if config.decision.mode != "single":
        raise ConfigError("tune chooses among single-label settings (decision.mode: single)", source=config.source,
                          key="decision.mode")
    texts = list(texts)
    if len(texts) != len(labels):
        raise InputError(f"tune needs one label per text (got {len(texts)} texts, {len(labels)} labels)")
    try:
        y = label_indices(labels, config.label_names)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if len(texts) < MIN_EXAMPLES:
        raise InputError(f"tune needs at least {MIN_EXAMPLES} labelled examples (got {len(texts)})")
    if folds < 2 or folds > len(texts) // 2:
        raise InputError(f"--folds must be between 2 and half the examples ({len(texts) // 2}), got {folds}")
    if len(set(y.tolist())) < 2:
        raise InputError("the labelled examples must cover at least two labels")
    prompts = (config.prompt, *(p for p in config.search.prompts if p != config.prompt))
    per_label = candidates(config)
    scores = []
    for i, prompt in enumerate(prompts):
        phase = f"prompt {i + 1}/{len(prompts)}"
        report = (lambda done, total, phase=phase: progress(phase, done, total)) if progress else None
        scores.append(prompt_scores(config, backend, prompt, per_label, texts, report))
    style_sets = [styles(config, per_label) for _ in prompts]
    base = config.scoring
    settings = settings_for(len(prompts), style_sets, _first(base.normalize, NORMALIZATIONS),
                            _first(base.aggregate, AGGREGATIONS), _first(base.calibration, CALIBRATIONS))
    options = [label_options(per_label, s) for s in style_sets]
    search = Search(scores, y, settings, options, folds=folds, seed=seed)
    total = search.steps_per_select() * (folds + 1)
    done = [0]

    def step(n: int) -> None:
        done[0] += n
        if progress:
            progress("search", done[0], total)

    estimate, outer = nested_estimate(search, step)
    rows = np.arange(len(y))
    chosen, selection = search.select(rows, step)
    bias, temperature = (0.0,) * len(config.labels), 1.0
    if chosen.fit:
        params = fit_bias_temperature(search.log_probs(chosen), y)
        bias, temperature = params.bias, params.temperature
    baseline = None
    if base.calibration in CALIBRATIONS and not any(label.bias for label in config.labels):
        own = replace(settings[0], completions=tuple(label.completions for label in config.labels), fit=False)
        baseline = search.cv_score(own, rows)
    return TuneResult(chosen_config(config, prompts[chosen.prompt], chosen, bias, temperature), chosen, estimate,
                      selection, baseline, outer, prompts, len(y), folds, len(settings),
                      time.perf_counter() - started, tuple(bias), float(temperature))


def chosen_config(config: Config, prompt: PromptTemplate, setting: Setting, bias: Sequence[float],
                  temperature: float) -> Config:
    """``config`` with what ``tune`` chose: prompt, completions, scoring, per-label bias and temperature."""
    labels = tuple(replace(label, completions=found, bias=float(b))
                   for label, found, b in zip(config.labels, setting.completions, bias, strict=True))
    scoring = replace(config.scoring, normalize=setting.normalize, aggregate=setting.aggregate,
                      calibration=setting.calibration, calibration_file=None, temperature=float(temperature))
    return replace(config, prompt=prompt, labels=labels, scoring=scoring)
