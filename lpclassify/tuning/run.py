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
from ..config.direction import CHANNEL_NORMALIZATIONS, CHANNEL_REFUSED_CALIBRATIONS
from ..config.dump import config_yaml, prompt_data
from ..config.schema import DIRECTIONS, PromptTemplate, Rerank
from ..errors import ConfigError, InputError
from ..evaluation import score_texts
from ..inputs import Input, input_words
from ..labels import label_indices
from ..records.files import atomic_output
from .budget import Budget
from .demos import Variant, available_shots, demo_pool, demonstrations, examples_of, variant_config
from .rerank import rerank_pairs, rerank_settings
from .rerank_maths import channel_log_likelihoods
from .search import (
    OuterFold,
    PromptScores,
    RerankSetting,
    Score,
    Search,
    Setting,
    label_free_methods,
    nested_estimate,
    settings_for,
)
from .verbalizers import candidate_config, candidates, label_options, styles

DEFAULT_FOLDS = 5
DEFAULT_SHOTS = (0, 1, 2)  # demonstrations per label the search tries
MAX_SHOTS = 8
DEFAULT_BUDGET = 300.0  # seconds: 64 examples and up to 10 labels on 2 cores
MIN_EXAMPLES = 10
SELECTION_RULE = ("the base config as given unless a setting beats it by more than one standard error of the "
                  "paired per-row difference in cross-validated correctness (then the best of those that do); each "
                  "per-label verbalizer change under the same rule")
SELECTION_RULE_NO_BASE = ("the best setting by cross-validated accuracy (the base config could not be scored as "
                          "given); each per-label verbalizer change only if it beats the setting by more than one "
                          "standard error of the paired per-row difference")
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
    variants: tuple[Variant, ...] = ()  # what Setting.prompt indexes: direction, prompt, demonstrations
    skipped: tuple[str, ...] = ()  # variants not scored, and why (the budget, n_ctx)
    n_demo_pool: int = 0  # examples set aside as demonstrations (never scored)
    base: Setting | None = None  # the config as given, the reference of the selection rule (None: not scorable)

    @property
    def variant(self) -> Variant:
        return self.variants[self.setting.prompt] if self.variants else Variant("direct", self.setting.prompt, 0)

    def calibration_document(self) -> dict[str, Any] | None:
        """The calibration file the chosen config needs (domain calibration: its inputs), or None."""
        if self.domain_inputs is None:
            return None
        scoring = self.config.scoring
        setting = {"normalize": scoring.normalize, "aggregate": scoring.aggregate}
        return {"labels": list(self.config.label_names), "direction": scoring.direction, **setting,
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
            "selection_rule": SELECTION_RULE if self.base is not None else SELECTION_RULE_NO_BASE,
            "kept_base": self.base is not None and self.setting == self.base,
            "variants": [v.describe() for v in self.variants], "skipped": list(self.skipped),
            "demonstration_pool": self.n_demo_pool,
            "chosen": {"variant": self.variant.describe(), "direction": self.variant.direction,
                       "demonstrations_per_label": self.variant.shots,
                       "demonstrations": [{**e.values, "label": e.labels[0]} for e in self.config.examples],
                       "prompt_index": self.variant.prompt, "prompt": prompt_data(self.prompts[self.setting.prompt]),
                       "verbalizer": self.setting.verbalizer,
                       "completions": {label.name: list(label.completions) for label in self.config.labels},
                       "normalize": self.setting.normalize, "aggregate": self.setting.aggregate,
                       "calibration": self.setting.calibration, "fitted": self.setting.fit,
                       "rerank": None if self.setting.rerank is None else {
                           "top": self.setting.rerank.top, "weight": self.setting.rerank.weight},
                       "bias": list(self.bias), "temperature": self.temperature},
            "outer_folds": [{"n": len(f.test_rows), "chosen": f.chosen.describe(), "inner_cv": score(f.inner),
                             "held_out": score(f.held_out),
                             "kept_base": self.base is not None and f.chosen == self.base} for f in self.outer],
            "prompts": [prompt_data(p) for p in self.prompts],
        }


def prompt_scores(config: Config, backend: Backend, prompt: PromptTemplate, per_label: tuple[tuple[str, ...], ...],
                  texts: Sequence[str], progress: Callable[[int, int], None] | None = None, *,
                  domain: Sequence[str] | None = None) -> PromptScores:
    """One model pass: every candidate of every label after ``prompt``, on ``texts`` and on the reference
    texts every label-free method needs (``domain``: the domain inputs; default: drawn from ``texts``)."""
    clf = Classifier(candidate_config(config, prompt, per_label), backend)
    raw = score_texts(clf, texts, progress=progress)
    if config.scoring.channel:  # its methods need no reference texts (see lpclassify.config.direction)
        columns = tuple((slot.label, slot.completion) for slot in clf.scorer.slots)
        return PromptScores(prompt, columns, raw.logprobs, raw.n_tokens, channel=True)
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


def tune(config: Config, backend: Backend, texts: Sequence[Input], labels: Sequence[Any], *,
         folds: int = DEFAULT_FOLDS, seed: int = 0, progress: Progress | None = None,
         shots: Sequence[int] = DEFAULT_SHOTS, directions: Sequence[str] = DIRECTIONS,
         budget: float | None = DEFAULT_BUDGET) -> TuneResult:
    """Choose direction, demonstrations, prompt, verbalizers, normalization, aggregation and calibration for
    ``config`` (see the module and :mod:`.demos`) within ``budget`` seconds (None: no limit)."""
    started = time.perf_counter()
    if config.decision.mode != "single":
        raise ConfigError("tune chooses among single-label settings (decision.mode: single)", source=config.source,
                          key="decision.mode")
    texts = list(texts)
    if len(texts) != len(labels):
        raise InputError(f"tune needs one label per text (got {len(texts)} texts, {len(labels)} labels)")
    y_all = label_indices(labels, config.label_names)
    if len(texts) < MIN_EXAMPLES:
        raise InputError(f"tune needs at least {MIN_EXAMPLES} labelled examples (got {len(texts)})")
    if folds < 2 or folds > len(texts) // 2:
        raise InputError(f"--folds must be between 2 and half the examples ({len(texts) // 2}), got {folds}")
    if len(set(y_all.tolist())) < 2:
        raise InputError("the labelled examples must cover at least two labels")
    given_rerank = config.scoring.rerank  # searched as a setting of its own (see .rerank), not carried along
    config = replace(config, scoring=replace(config.scoring, rerank=None))
    if config.chat or config.scoring.channel:
        directions = [config.scoring.direction]  # a chat prompt cannot be turned round; a channel one already is
    prompts = (config.prompt, *(p for p in config.search.prompts if p != config.prompt))
    if config.examples:  # the config's own demonstrations stay; tune does not replace them
        shots = (0,)
    pool = demo_pool(y_all, len(config.labels), max(shots, default=0), seed)
    counts = available_shots(pool, shots or (0,))
    held = set(demonstrations(pool, max(counts)))  # the pool is never scored: see .demos
    rows_scored = np.array([r for r in range(len(texts)) if r not in held], dtype=np.int64)
    y = y_all[rows_scored]
    scored_texts = [texts[r] for r in rows_scored]
    names = [config.label_names[i] for i in y_all]
    domain = tuning_domain_inputs(scored_texts)
    budget_plan = Budget(budget, started, [len(backend.tokenize(str(t), False)) for t in scored_texts])
    methods = _first(config.scoring.calibration, label_free_methods())
    scores: list[PromptScores] = []
    variants: list[Variant] = []
    bases: list[Config] = []
    settings: list[Setting] = []
    options: list[list[list[tuple[str, ...]]]] = []
    for variant in variant_order(len(prompts), counts, directions):
        examples = examples_of(config, texts, names, demonstrations(pool, variant.shots)) or config.examples
        try:
            base_v = variant_config(config, prompts, variant, examples)
        except ConfigError as exc:
            budget_plan.skipped.append(f"{variant.describe()}: {exc}")
            continue
        per_label = candidates(config) if variant.direction == "direct" else tuple(
            label.completions for label in base_v.labels)
        own_settings, own_options = variant_settings(config, base_v, per_label, methods, len(scores))
        if not budget_plan.allows(variant, sum(len(c) for c in per_label), len(settings) + len(own_settings)):
            continue
        phase = f"{len(scores) + 1}: {variant.describe()}"
        report = (lambda done, total, phase=phase: progress(phase, done, total)) if progress else None
        try:
            scores.append(prompt_scores(base_v, backend, base_v.prompt, per_label, scored_texts, report,
                                        domain=domain))
        except InputError as exc:  # demonstrations that leave no room for the text in n_ctx
            budget_plan.skipped.append(f"{variant.describe()}: {exc}")
            continue
        budget_plan.spent(variant, sum(len(c) for c in per_label))
        variants.append(variant)
        bases.append(base_v)
        settings += own_settings
        options.append(own_options)
        if len(scores) == 1:  # what a setting costs the search, from a sample of the first variant's
            budget_plan.time_search(Search(scores, y, settings, options, folds=folds, seed=seed,
                                           batch_chunk=batch_chunk_size(config.runtime.batch_size)), folds)
    pairs = rerank_pairs(config, prompts, variants)
    reranks = rerank_settings(settings, scores, pairs, len(config.labels))
    if reranks and budget_plan.allows_settings(f"rerank of the top labels ({len(reranks)} settings)",
                                               len(settings) + len(reranks)):
        settings += reranks
    # the config as given, when the search can score it (a label-free calibration, no bias of its own, scored
    # without demonstrations as it is): the setting every other must beat (see .search's selection rule)
    own = None
    if config.scoring.calibration in methods and not any(label.bias for label in config.labels) and \
            (config.examples or not variants[0].shots) and variants[0] == Variant(config.scoring.direction, 0, 0):
        own = replace(settings[0], completions=tuple(label.completions for label in config.labels), fit=False)
        if not all((i, c) in scores[0].columns for i, found in enumerate(own.completions) for c in found):
            own = None  # a completion the pass did not score as the config's (shared with another label, channel)
        elif given_rerank is not None:  # its rerank, when the channel pass scored what it reads; else not scorable
            own = replace(own, rerank=RerankSetting(pairs[0], given_rerank.top, given_rerank.weight)) \
                if 0 in pairs else None
    if own is not None and own.rerank is not None and \
            channel_log_likelihoods(scores[own.rerank.scores], own.completions, own.aggregate) is None:
        own = None  # its rerank reads a verbalization the channel pass did not score
    search = Search(scores, y, settings, options, folds=folds, seed=seed,
                    batch_chunk=batch_chunk_size(config.runtime.batch_size), base=own)
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
    baseline = None if own is None else search.cv_score(own, rows)
    base_v = bases[chosen.prompt]
    return TuneResult(chosen_config(base_v, base_v.prompt, chosen, bias, temperature), chosen, estimate,
                      selection, baseline, outer, tuple(b.prompt for b in bases), len(y), folds, len(settings),
                      time.perf_counter() - started, tuple(bias), float(temperature), tuple(methods),
                      tuple(domain) if chosen.calibration == "domain" else None, tuple(variants),
                      tuple(budget_plan.skipped), len(held), own)


def variant_order(n_prompts: int, counts: Sequence[int], directions: Sequence[str]) -> list[Variant]:
    """What is scored, in this order (the budget skips from the end): every prompt as it is (the search
    without demonstrations), then the first prompt with demonstrations, then turned round (channel
    passes cost several direct ones), then the other prompts so. A fixed order: what is scored never
    depends on scores."""
    first = [Variant(directions[0], p, 0) for p in range(n_prompts)]
    rest = [Variant(d, p, k) for p in range(n_prompts) for d in directions for k in counts
            if Variant(d, p, k) not in first]
    return first + rest


def variant_settings(config: Config, base_v: Config, per_label: tuple[tuple[str, ...], ...], methods: Sequence[str],
                     index: int) -> tuple[list[Setting], list[list[tuple[str, ...]]]]:
    """The settings of one variant (``Setting.prompt`` = ``index``, its place among the scored variants) and its
    per-label verbalizer options. Channel scoring: normalize sum|mean, and only the methods that mean something
    for P(input | label) (see :mod:`lpclassify.config.direction`)."""
    base = config.scoring
    style_set = styles(base_v, per_label)
    if base_v.scoring.channel:
        found = settings_for(1, [style_set], _first(base.normalize, CHANNEL_NORMALIZATIONS),
                             _first(base.aggregate, AGGREGATIONS),
                             [m for m in methods if m not in CHANNEL_REFUSED_CALIBRATIONS])
    else:
        found = settings_for(1, [style_set], _first(base.normalize, NORMALIZATIONS),
                             _first(base.aggregate, AGGREGATIONS), methods)
    return [replace(setting, prompt=index) for setting in found], label_options(per_label, style_set)


def chosen_config(config: Config, prompt: PromptTemplate, setting: Setting, bias: Sequence[float],
                  temperature: float) -> Config:
    """``config`` with what ``tune`` chose: prompt, completions, scoring, per-label bias and temperature."""
    labels = tuple(replace(label, completions=found, bias=float(b))
                   for label, found, b in zip(config.labels, setting.completions, bias, strict=True))
    rerank = None if setting.rerank is None else Rerank(setting.rerank.top, setting.rerank.weight)
    scoring = replace(config.scoring, normalize=setting.normalize, aggregate=setting.aggregate,
                      calibration=setting.calibration, calibration_file=None, temperature=float(temperature),
                      rerank=rerank)
    return replace(config, prompt=prompt, labels=labels, scoring=scoring)
