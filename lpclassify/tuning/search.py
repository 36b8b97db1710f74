"""The search itself, on scores already computed: numpy through :func:`lpclassify.pipeline.run`, no model.

A :class:`Setting` is one way to classify: a prompt, per-label completions, a normalization,
an aggregation, a calibration method that needs no labels (every registered one: ``none``,
``contextual``, ``domain``, ``batch``, ``pmi`` and any added with ``calibration.register``) and
whether a per-label bias and temperature are fitted on the labelled examples. Every setting of
one prompt reads the columns of the same :class:`PromptScores` (one model pass, plus the
reference texts the methods need), so trying hundreds costs milliseconds each; the probabilities
come from the same pipeline the chosen config will run.

**Selection rule.** :func:`Search.select` scores every setting by k-fold cross-validation (the
bias and temperature, if any, fitted on the training folds only) and compares each with a
*reference*: the config as it was given (``Search(base=...)``; ``tune`` passes it when its
calibration is label-free and it carries no bias), else the best setting by cross-validated
accuracy (ties: lower log-loss, then the earlier setting). A setting replaces the reference only
if it beats it by more than one standard error of the PAIRED per-row difference in held-out
correctness, ``mean(d) > SE(d) = sd(d) / sqrt(n)`` with ``d_i = correct_new(i) - correct_ref(i)``;
among the settings that clear that bar the best wins (ties as above). The per-label verbalizer
refinement that follows makes each change only under the same rule, against the setting it would
replace. Why: with 64 examples a maximum over hundreds of cross-validated accuracies is mostly the
luckiest estimate (one row is 1.6 points; benchmarks/reports/tune-agnews-n40.json: the maximum's
choice lost to the config's own setting on the evaluated rows), and the winner's advantage is then
noise. This is Breiman et al.'s (1984)
one-standard-error rule with the config as the "simplest" model: when the evidence cannot tell
a candidate from what the user wrote, keep what the user wrote. The difference is paired (the
same rows, the same folds), so the many rows on which two settings agree cost nothing and the
standard error measures only their disagreement; a candidate that wins on one row and loses on
none has ``mean(d) == SE(d)`` exactly and does not pass, one that wins on 2 and loses on none
does. The bar is a constant (:data:`SE_MARGIN`), not tuned on any evaluated rows. What it is not:
a test corrected for the number of candidates (with hundreds, a lucky one can still clear one
standard error), nor exact (cross-validated rows share their folds' fits, so they are not quite
independent); it is a margin that grows with how much two settings disagree: a one-row win never
clears it, a win of a few rows with few losses does.

A setting may carry a rerank (:class:`RerankSetting`, ``scoring.rerank``): its direct probabilities,
after the fitted bias if any, then its ``top`` labels per row decided again with the channel pass of
the same prompt (:func:`.rerank_maths.reranked`, the rerank stage's own arithmetic); :mod:`.rerank` says which.

Honesty: the chosen setting's cross-validated score is optimistic (it is the best of many), so
:func:`nested_estimate` repeats the whole selection, rule included, inside each outer training
split and scores the winner on the outer held-out fold it never saw: that is the accuracy
``tune`` reports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from .. import calibration, pipeline
from ..calibration import BATCH_CHUNK, CalibrationState, fit_bias_temperature
from ..config.schema import PromptTemplate
from ..inputs import chunks
from ..normalize import label_bias, safe_log
from .rerank_maths import channel_log_likelihoods, reranked

# Cross-validation fits stop earlier than the final one: a ranking of settings needs less precision.
CV_FIT = {"tol": 1e-6, "max_steps": 30}
# A candidate must beat the setting it would replace by more than this many standard errors of the paired
# per-row difference in held-out correctness (the one-standard-error rule; see the module docstring).
SE_MARGIN = 1.0
Progress = Callable[[int], None]  # called with the number of settings just evaluated


def label_free_methods() -> tuple[str, ...]:
    """Every registered calibration method that needs no labels at inference, in registration order."""
    return tuple(name for name in calibration.method_names() if not calibration.get(name).needs_labels)


@dataclass(frozen=True)
class PromptScores:
    """One prompt's model pass: every candidate's summed log-prob on the labelled texts and the references.

    ``references`` maps each reference text the methods need (content-free inputs, PMI's neutral
    text, domain inputs) to its ``(logprobs, n_tokens)`` over all columns.
    """

    prompt: PromptTemplate
    columns: tuple[tuple[int, str], ...]  # (label index, completion) per column
    logprobs: np.ndarray  # (n_texts, n_columns)
    n_tokens: np.ndarray  # (n_texts, n_columns)
    references: Mapping[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    content_free: tuple[str, ...] = ()
    domain_inputs: tuple[str, ...] | None = None  # random in-domain word strings (domain calibration)
    channel: bool = False  # P(input | label): a label's completions are a mixture (log-mean-exp, not logsumexp)

    def column(self, label: int, completion: str) -> int:
        return self.columns.index((label, completion))


@dataclass(frozen=True)
class RerankSetting:
    """``scoring.rerank`` on a direct setting: its ``top`` labels scored again by the channel pass
    ``scores`` (an index into the search's :class:`PromptScores`: the same prompt turned round, no
    demonstrations), decided by log p_direct + ``weight`` * log p_channel (:mod:`lpclassify.rerank`)."""

    scores: int
    top: int
    weight: float


@dataclass(frozen=True)
class Setting:
    """One candidate classifier (see the module docstring)."""

    prompt: int
    verbalizer: str  # the style it came from ("config", "name", ...), "+refined" after per-label changes
    completions: tuple[tuple[str, ...], ...]  # per label
    normalize: str
    aggregate: str
    calibration: str
    fit: bool
    rerank: RerankSetting | None = None

    def scoring(self) -> pipeline.Setting:
        """The label-free part, as the pipeline's setting (the fitted bias and temperature come on top)."""
        return pipeline.Setting(self.normalize, self.aggregate, self.calibration)

    def describe(self) -> str:
        fit = " + fitted bias/temperature" if self.fit else ""
        rerank = f", rerank top {self.rerank.top} weight {self.rerank.weight:g}" if self.rerank else ""
        return (f"prompt {self.prompt}, verbalizer {self.verbalizer}, normalize {self.normalize}, "
                f"aggregate {self.aggregate}, calibration {self.calibration}{fit}{rerank}")


@dataclass(frozen=True)
class Score:
    accuracy: float
    log_loss: float
    # per scored row, whether it was classified right (held out when cross-validated): what the rule pairs
    correct: np.ndarray | None = field(default=None, repr=False, compare=False)

    def key(self) -> tuple[float, float]:
        return (round(self.accuracy, 12), -self.log_loss)


def paired_margin(new: Score, old: Score) -> tuple[float, float]:
    """``(mean, standard error)`` of the per-row difference ``new.correct - old.correct`` (the same rows)."""
    if new.correct is None or old.correct is None:
        raise ValueError("paired_margin needs the per-row correctness of both scores")
    d = new.correct.astype(np.float64) - old.correct.astype(np.float64)
    if len(d) < 2:
        return float(d.mean()) if len(d) else 0.0, 0.0
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))


def beats(new: Score, old: Score, margin: float = SE_MARGIN) -> bool:
    """Whether ``new`` is better than ``old`` by more than ``margin`` standard errors of the paired difference."""
    mean, se = paired_margin(new, old)
    return mean > 0 and mean > margin * se + 1e-12  # equality (one row won, none lost) is no evidence


def best_beating(incumbent: tuple[Setting, Score], candidates: Sequence[tuple[Setting, Score]],
                 margin: float = SE_MARGIN) -> tuple[Setting, Score]:
    """The best candidate (by :meth:`Score.key`, the earlier on ties) among those that :func:`beats` the
    incumbent, else the incumbent."""
    best = incumbent
    for setting, score in candidates:
        if beats(score, incumbent[1], margin) and (best is incumbent or score.key() > best[1].key()):
            best = (setting, score)
    return best


def label_log_probs(scores: PromptScores, setting: Setting, *, batch_chunk: int = BATCH_CHUNK) -> np.ndarray:
    """The setting's label-free log-probabilities of every text, ``(n_texts, n_labels)``, from the pipeline.

    A method that calibrates over the batch sees the texts in chunks of ``batch_chunk``, in order,
    as ``classify_many`` would hand them to it.
    """
    cols = [scores.column(i, c) for i, found in enumerate(setting.completions) for c in found]
    columns = pipeline.Columns(tuple(scores.columns[c][0] for c in cols), len(setting.completions))
    chars = np.array([len(scores.columns[c][1].strip()) or 1 for c in cols])

    def reference(texts: Sequence[str]) -> pipeline.Arrays:
        try:
            rows = [scores.references[t] for t in texts]
        except KeyError as exc:
            raise ValueError(f"tune scored no reference text {exc.args[0]!r}") from None
        return pipeline.Arrays(np.array([lp[cols] for lp, _ in rows]).reshape(len(rows), len(cols)),
                               np.array([nt[cols] for _, nt in rows]).reshape(len(rows), len(cols)), chars)

    references = pipeline.References(scores=reference, content_free=scores.content_free,
                                     state=lambda: CalibrationState(domain_inputs=scores.domain_inputs),
                                     source="tune")
    method = calibration.get(setting.calibration)
    scoring = setting.scoring()
    if scores.channel and scoring.aggregate == "logsumexp":  # as Scoring.label_aggregate
        scoring = replace(scoring, aggregate="logmeanexp")
    n = len(scores.logprobs)
    parts = [range(n)] if not method.uses_batch else [range(c[0], c[-1] + 1) for c in chunks(range(n), batch_chunk)]
    probs = [pipeline.run(pipeline.Arrays(scores.logprobs[part.start:part.stop, cols],
                                          scores.n_tokens[part.start:part.stop, cols], chars),
                          columns, scoring, references).probabilities for part in parts]
    return safe_log(np.concatenate(probs) if probs else np.empty((0, columns.n_labels)))


def apply_fit(log_probs: np.ndarray, bias: Sequence[float], temperature: float) -> np.ndarray:
    """A fitted bias and temperature on label-free log-probabilities: the pipeline's last step, as the
    written config computes it (:func:`~lpclassify.normalize.label_bias`)."""
    return safe_log(label_bias(np.exp(log_probs), bias, temperature))


def folds_of(y: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """A fold number per row, stratified by label (each fold gets its share of every label); deterministic."""
    y = np.asarray(y)
    order = np.random.default_rng(seed).permutation(len(y))
    order = order[np.argsort(y[order], kind="stable")]
    out = np.empty(len(y), dtype=np.int64)
    out[order] = np.arange(len(y)) % max(2, min(k, len(y)))
    return out


def held_out_log_probs(log_probs: np.ndarray, y: np.ndarray, rows: np.ndarray, folds: np.ndarray,
                       fit: bool) -> np.ndarray:
    """Log-probabilities of ``rows``, each from a bias/temperature fitted on the other folds' rows (``fit``)."""
    if not fit:
        return log_probs[rows]
    out = np.empty((len(rows), log_probs.shape[1]))
    for fold in np.unique(folds):
        test = folds == fold
        train = rows[~test]
        params = fit_bias_temperature(log_probs[train], y[train], **CV_FIT)
        out[test] = apply_fit(log_probs[rows[test]], params.bias, params.temperature)
    return out


def score_of(log_probs: np.ndarray, y: np.ndarray) -> Score:
    correct = log_probs.argmax(axis=1) == y
    return Score(float(np.mean(correct)), float(-np.mean(log_probs[np.arange(len(y)), y])), correct)


class Search:
    """Settings over some prompts' scores, with their label-free log-probabilities cached."""

    def __init__(self, scores: Sequence[PromptScores], y: np.ndarray, settings: Sequence[Setting],
                 options: Sequence[Sequence[Sequence[tuple[str, ...]]]], *, folds: int = 5, seed: int = 0,
                 batch_chunk: int = BATCH_CHUNK, base: Setting | None = None) -> None:
        self.scores = list(scores)
        self.y = np.asarray(y, dtype=np.int64)
        self.settings = list(settings)
        self.options = options  # per prompt, per label: completion sets the refinement tries
        self.k = folds
        self.seed = seed
        self.batch_chunk = batch_chunk
        self.base = base  # the config as given: the reference a setting must beat (None: the best by CV)
        self._cache: dict[tuple, np.ndarray] = {}
        self._channel: dict[tuple, np.ndarray | None] = {}
        self._held: tuple[tuple, np.ndarray] | None = None  # the last direct held-out scores (reranks reuse them)

    def channel(self, setting: Setting) -> np.ndarray | None:
        """The channel log-likelihoods ``setting``'s rerank reads (None: no rerank, or its pass lacks one)."""
        if setting.rerank is None:
            return None
        key = (setting.rerank.scores, setting.completions, setting.aggregate)
        if key not in self._channel:
            self._channel[key] = channel_log_likelihoods(self.scores[setting.rerank.scores], setting.completions,
                                                         setting.aggregate)
        return self._channel[key]

    def can_rerank(self, setting: Setting) -> bool:
        """Whether the search can compute ``setting`` exactly (a rerank: its channel pass scored every
        verbalization its completions need)."""
        return setting.rerank is None or self.channel(setting) is not None

    def finish(self, setting: Setting, log_probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``log_probs`` of ``rows`` (after any fitted bias) through ``setting``'s rerank, if it has one."""
        if setting.rerank is None:
            return log_probs
        channel = self.channel(setting)
        if channel is None:  # never a guess: such a setting is not searched (see can_rerank)
            raise ValueError(f"the channel pass did not score every verbalization of {setting.describe()}")
        return reranked(log_probs, channel[rows], setting.rerank.top, setting.rerank.weight)

    def log_probs(self, setting: Setting) -> np.ndarray:
        key = (setting.prompt, setting.completions, setting.normalize, setting.aggregate, setting.calibration)
        if key not in self._cache:
            self._cache[key] = label_log_probs(self.scores[setting.prompt], setting, batch_chunk=self.batch_chunk)
        return self._cache[key]

    def cv_score(self, setting: Setting, rows: np.ndarray) -> Score:
        """Cross-validated score of ``setting`` on ``rows`` (the fit, if any, never sees the row it scores)."""
        direct = replace(setting, rerank=None, verbalizer="")
        key = (direct, rows.tobytes())
        if self._held is None or self._held[0] != key:  # a setting's reranks follow it: fit once for all of them
            folds = folds_of(self.y[rows], self.k, self.seed)
            self._held = (key, held_out_log_probs(self.log_probs(setting), self.y, rows, folds, setting.fit))
        return score_of(self.finish(setting, self._held[1], rows), self.y[rows])

    def steps_per_select(self) -> int:
        return len(self.settings) + max(sum(len(o) for o in per_prompt) for per_prompt in self.options)

    def select(self, rows: np.ndarray, progress: Progress | None = None) -> tuple[Setting, Score]:
        """The setting chosen on ``rows`` by the rule of the module docstring: the base config unless a setting
        beats it by more than a standard error of the paired difference, then per-label verbalizer refinement
        (each change under the same rule)."""
        scored = [(setting, self.cv_score(setting, rows)) for setting in self.settings]
        if self.base is None:
            best = scored[0]
            for candidate in scored[1:]:
                if candidate[1].key() > best[1].key():
                    best = candidate
        else:
            best = best_beating((self.base, self.cv_score(self.base, rows)), scored)
        if progress:
            progress(len(self.settings))
        for label, options in enumerate(self.options[best[0].prompt]):
            current = best[0]
            verbalizer = current.verbalizer.removesuffix("+refined") + "+refined"
            tried = []
            for option in options:
                if option == current.completions[label]:
                    continue
                completions = (*current.completions[:label], option, *current.completions[label + 1:])
                candidate = replace(current, completions=completions, verbalizer=verbalizer)
                if not self.can_rerank(candidate):  # a verbalization the channel pass did not score
                    continue
                tried.append((candidate, self.cv_score(candidate, rows)))
            best = best_beating(best, tried)
        if progress:
            progress(self.steps_per_select() - len(self.settings))
        return best

    def predict_held_out(self, setting: Setting, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        """Log-probabilities of ``test`` rows under ``setting``, fitted (if it fits) on ``train`` rows only."""
        log_probs = self.log_probs(setting)
        if not setting.fit:
            return self.finish(setting, log_probs[test], test)
        params = fit_bias_temperature(log_probs[train], self.y[train])
        return self.finish(setting, apply_fit(log_probs[test], params.bias, params.temperature), test)


@dataclass(frozen=True)
class OuterFold:
    """One outer fold of the nested cross-validation: what was chosen without it, and how it did on it."""

    test_rows: tuple[int, ...]
    chosen: Setting
    inner: Score  # the winner's cross-validated score on the training rows (optimistic)
    held_out: Score  # its score on this fold's rows, which the choice never saw


def nested_estimate(search: Search, progress: Progress | None = None) -> tuple[Score, list[OuterFold]]:
    """Accuracy of the whole procedure (selection + fit) on rows it never saw: k outer folds, selection inside each."""
    n = len(search.y)
    rows = np.arange(n)
    outer = folds_of(search.y, search.k, search.seed + 1)
    log_probs = np.empty((n, len(search.settings[0].completions)))
    result = []
    for fold in np.unique(outer):
        test, train = rows[outer == fold], rows[outer != fold]
        chosen, inner = search.select(train, progress)
        held = search.predict_held_out(chosen, train, test)
        log_probs[test] = held
        result.append(OuterFold(tuple(int(i) for i in test), chosen, inner, score_of(held, search.y[test])))
    return score_of(log_probs, search.y), result


def settings_for(n_prompts: int, styles: Sequence[dict[str, tuple[tuple[str, ...], ...]]],
                 normalizations: Sequence[str], aggregations: Sequence[str],
                 calibrations: Sequence[str] | None = None, fits: Sequence[bool] = (False, True)) -> list[Setting]:
    """Every combination that can differ, the first being the first prompt's first style.

    ``calibrations`` defaults to every label-free method (:func:`label_free_methods`); each is tried
    with and without a fitted bias and temperature. Left out because it computes the same thing as
    a setting that is in: ``max`` where every label has one completion (it equals ``logsumexp`` then).
    """
    methods = label_free_methods() if calibrations is None else tuple(calibrations)
    out = []
    for prompt in range(n_prompts):
        for style, completions in styles[prompt].items():
            several = any(len(c) > 1 for c in completions)
            for norm in normalizations:
                for agg in (aggregations if several else aggregations[:1]):
                    for method in methods:
                        for fit in fits:
                            out.append(Setting(prompt, style, completions, norm, agg, method, fit))
    return out
