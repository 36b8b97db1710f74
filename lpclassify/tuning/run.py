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
from pathlib import Path
from typing import Any

import numpy as np

from .. import calibration
from ..backends.base import Backend
from ..calibration import CalibrationState, batch_chunk_size, fit_bias_temperature
from ..calibration.store import write_calibration_file
from ..classifier import Classifier
from ..config import AGGREGATIONS, NORMALIZATIONS, Config
from ..config.dump import config_yaml, prompt_data
from ..config.schema import PromptTemplate
from ..errors import ConfigError, InputError
from ..evaluation import score_texts
from ..inputs import Input, input_words
from ..labels import label_indices
from ..records.files import atomic_output
from .search import (
    OuterFold,
    PromptScores,
    Score,
    Search,
    Setting,
    label_free_methods,
    nested_estimate,
    settings_for,
)
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
    methods: tuple[str, ...] = ()  # the calibration methods searched
    domain_inputs: tuple[str, ...] | None = None  # the chosen domain calibration's inputs (from the examples)

    def calibration_document(self) -> dict[str, Any] | None:
        """The calibration file the chosen config needs (domain calibration: its inputs), or None."""
        if self.domain_inputs is None:
            return None
        scoring = self.config.scoring
        setting = {"normalize": scoring.normalize, "aggregate": scoring.aggregate}
        return {"labels": list(self.config.label_names), **setting,
                "domain": {"inputs": list(self.domain_inputs), **setting}}

    def classifier(self, backend: Backend) -> Classifier:
        """A classifier of the chosen config, with the domain inputs it chose if any (what the written files load)."""
        clf = Classifier(self.config, backend)
        if self.domain_inputs is not None:
            clf.calibration_state.domain_inputs = self.domain_inputs
        return clf

    def write(self, path: str | Path, header: str, comments_from: str | None = None) -> list[Path]:
        """Write the chosen config (YAML, commented with ``header`` and the base config's comments from
        ``comments_from``, its text) and, for domain calibration, its calibration file next to it
        (``<name>.calibration.json``, which the config names); returns the paths."""
        path = Path(path)
        config, written = self.config, []
        document = self.calibration_document()
        if document is not None:
            file = path.with_name(path.stem + ".calibration.json")
            write_calibration_file(file, document)
            config = replace(config, scoring=replace(config.scoring, calibration_file=file.name))
            written.append(file)
        with atomic_output(path) as stream:
            stream.write(config_yaml(config, header, comments_from=comments_from))
        return [path, *written]

    def as_dict(self) -> dict[str, Any]:
        def score(s: Score | None) -> dict[str, float] | None:
            return None if s is None else {"accuracy": s.accuracy, "log_loss": s.log_loss}

        return {
            "n_examples": self.n_examples, "folds": self.folds, "settings_searched": self.n_settings,
            "methods_searched": list(self.methods), "fits_searched": [False, True],
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
                  texts: Sequence[str], progress: Callable[[int, int], None] | None = None, *,
                  domain: Sequence[str] | None = None) -> PromptScores:
    """One model pass: every candidate of every label after ``prompt``, on ``texts`` and on the reference
    texts every label-free method needs (``domain``: the domain inputs; default: drawn from ``texts``)."""
    clf = Classifier(candidate_config(config, prompt, per_label), backend)
    raw = score_texts(clf, texts, progress=progress)
    domain = tuple(domain if domain is not None else tuning_domain_inputs(texts))
    state = CalibrationState(domain_inputs=domain)
    content_free = tuple(config.scoring.content_free)
    needed = tuple(dict.fromkeys(text for name in label_free_methods()
                                 for text in calibration.get(name).reference_texts(content_free, "single", state)))
    refs = clf.reference_scores(needed) if needed else None
    references = {text: (refs.logprobs[i], refs.n_tokens[i]) for i, text in enumerate(needed)} if refs else {}
    columns = tuple((slot.label, slot.completion) for slot in clf.scorer.slots)
    return PromptScores(prompt, columns, raw.logprobs, raw.n_tokens, references, content_free, domain)


def tuning_domain_inputs(texts: Sequence[Input]) -> list[str]:
    """Domain calibration's random-word inputs, drawn from the (unlabelled) tuning texts."""
    return calibration.domain_inputs([input_words(t) for t in texts])


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
    y = label_indices(labels, config.label_names)
    if len(texts) < MIN_EXAMPLES:
        raise InputError(f"tune needs at least {MIN_EXAMPLES} labelled examples (got {len(texts)})")
    if folds < 2 or folds > len(texts) // 2:
        raise InputError(f"--folds must be between 2 and half the examples ({len(texts) // 2}), got {folds}")
    if len(set(y.tolist())) < 2:
        raise InputError("the labelled examples must cover at least two labels")
    prompts = (config.prompt, *(p for p in config.search.prompts if p != config.prompt))
    per_label = candidates(config)
    domain = tuning_domain_inputs(texts)
    scores = []
    for i, prompt in enumerate(prompts):
        phase = f"prompt {i + 1}/{len(prompts)}"
        report = (lambda done, total, phase=phase: progress(phase, done, total)) if progress else None
        scores.append(prompt_scores(config, backend, prompt, per_label, texts, report, domain=domain))
    style_sets = [styles(config, per_label) for _ in prompts]
    base = config.scoring
    methods = _first(base.calibration, label_free_methods())
    settings = settings_for(len(prompts), style_sets, _first(base.normalize, NORMALIZATIONS),
                            _first(base.aggregate, AGGREGATIONS), methods)
    options = [label_options(per_label, s) for s in style_sets]
    search = Search(scores, y, settings, options, folds=folds, seed=seed,
                    batch_chunk=batch_chunk_size(config.runtime.batch_size))
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
    if base.calibration in methods and not any(label.bias for label in config.labels):
        own = replace(settings[0], completions=tuple(label.completions for label in config.labels), fit=False)
        baseline = search.cv_score(own, rows)
    return TuneResult(chosen_config(config, prompts[chosen.prompt], chosen, bias, temperature), chosen, estimate,
                      selection, baseline, outer, prompts, len(y), folds, len(settings),
                      time.perf_counter() - started, tuple(bias), float(temperature), tuple(methods),
                      tuple(domain) if chosen.calibration == "domain" else None)


def chosen_config(config: Config, prompt: PromptTemplate, setting: Setting, bias: Sequence[float],
                  temperature: float) -> Config:
    """``config`` with what ``tune`` chose: prompt, completions, scoring, per-label bias and temperature."""
    labels = tuple(replace(label, completions=found, bias=float(b))
                   for label, found, b in zip(config.labels, setting.completions, bias, strict=True))
    scoring = replace(config.scoring, normalize=setting.normalize, aggregate=setting.aggregate,
                      calibration=setting.calibration, calibration_file=None, temperature=float(temperature))
    return replace(config, prompt=prompt, labels=labels, scoring=scoring)
