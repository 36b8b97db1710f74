"""``scoring.direction``: which way round the model is asked, and what each direction allows.

``direct`` (the default) scores P(label | input): each label's completion after the prompt with the
input in it. ``channel`` (Min et al. 2022, "Noisy Channel Language Model Prompting") scores
P(input | label): the prompt names the label first, through ``{label}``, and the input is the
continuation that gets scored::

    prompt: "Topic: {label}\\nArticle: {text}"
    labels:
      sports: {completions: [" Sports", " Football"]}     # {label} -> "Sports", then "Football"
    scoring: {direction: channel}

``{label}`` becomes each of the label's completions with the surrounding whitespace stripped (its
verbalizations), and must come before an input field. The fields after it are what is scored; a
field before it is context the label is read with, not scored: ``"{premise} {label} {hypothesis}"``
with verbalizations such as "In other words," and "On the contrary," scores
P(hypothesis | premise, label). A label's several verbalizations are a uniform mixture:
``aggregate: logsumexp`` takes the mean of their likelihoods.

What channel scoring allows, and why the rest is refused:

* ``normalize: sum`` or ``mean``. Every label scores the same input tokens, so ``mean`` is the
  same decision with softer probabilities; ``chars`` would divide by the verbalization's length,
  which is not what was scored.
* ``calibration: none``, ``fitted`` (a per-label bias is exactly the label prior P(label) that
  Bayes' rule multiplies P(input | label) by) and ``batch`` (the batch's mean label probabilities,
  whatever produced them). ``contextual`` and ``domain`` divide out the label the model prefers for
  a content-free input; in channel scoring a content-free input is a text scored after each label,
  which measures how likely "N/A" is after a label, not a label prior. ``pmi`` subtracts the
  completion's log-prob without the input, and the channel score is already that up to a term the
  same for every label (P(input)).
* single-label decisions and plain template prompts (not chat messages).

``scoring.rerank: {top: 3, weight: 0.5}`` keeps direct scoring and asks the channel question of
its ``top`` labels only, with the config turned round by :func:`as_channel` (what it computes:
:mod:`lpclassify.rerank`); so it needs a direct config that this turn allows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..errors import ConfigError
from .schema import RESERVED_PLACEHOLDERS, Config, Rerank
from .templates import TOKEN, Field, parse_template

CHANNEL_NORMALIZATIONS = ("sum", "mean")
# Calibrations that have no meaning for P(input | label), and why (shown in the error).
CHANNEL_REFUSED_CALIBRATIONS = {
    "contextual": "a content-free input scored after each label measures how likely 'N/A' is after it, "
                  "not a label prior",
    "domain": "random in-domain words scored after each label measure how likely they are after it, "
              "not a label prior",
    "pmi": "the channel score already is the input's log-prob given the label, up to a term the same for "
           "every label",
}
CHANNEL_HINT = "with scoring.direction: channel"


def check_direction(config: Config) -> None:
    """ConfigError for a setting that channel scoring cannot honour (a rerank's included); nothing for
    direct scoring."""
    check_rerank(config)
    scoring = config.scoring
    if not scoring.channel:
        return
    source = config.source

    def error(message: str, key: str) -> ConfigError:
        return ConfigError(message, source=source, key=key)

    if config.decision.mode != "single":
        raise error(f"{CHANNEL_HINT}, decisions are single-label (P(input | label) for each label); multi-label "
                    "configs ask each label a yes/no question: use scoring.direction: direct", "scoring.direction")
    if config.chat:
        raise error(f"{CHANNEL_HINT}, the prompt is a plain template string, e.g. \"Topic: {{label}}\\n"
                    "Article: {text}\"", "prompt")
    check_channel_settings(scoring.calibration, scoring.normalize, source)
    assert isinstance(config.prompt, str)
    for key, template in (("prompt", config.prompt), *((f"search.prompts.{i}", p)
                                                       for i, p in enumerate(config.search.prompts))):
        check_channel_template(template, source=source, key=key)
    for label in config.labels:
        stripped = [completion.strip() for completion in label.completions]
        if len(set(stripped)) != len(stripped):
            raise error(f"{CHANNEL_HINT}, {{label}} is a completion without its surrounding whitespace, so "
                        f"{label.completions} name the label twice; keep one", f"labels.{label.name}.completions")
    owners: dict[str, str] = {}
    for label in config.labels:
        for completion in label.completions:
            other = owners.setdefault(completion.strip(), label.name)
            if other != label.name:
                raise error(f"{completion.strip()!r} stands for both {other!r} and {label.name!r} once "
                            "{label} strips its whitespace", f"labels.{label.name}.completions")


def check_channel_settings(calibration: str, normalize: str, source: str) -> None:
    """ConfigError for a calibration or normalization that has no meaning for P(input | label)."""
    if normalize not in CHANNEL_NORMALIZATIONS:
        raise ConfigError(f"{CHANNEL_HINT}, normalize is sum or mean (every label scores the same input, so "
                          f"{normalize!r} would not compare like with like)", source=source, key="scoring.normalize")
    reason = CHANNEL_REFUSED_CALIBRATIONS.get(calibration)
    if reason:
        raise ConfigError(f"{calibration} calibration does not apply {CHANNEL_HINT}: {reason}; use none, fitted "
                          "or batch", source=source, key="scoring.calibration")


def check_channel_template(template: str, *, source: str, key: str) -> None:
    """``{label}`` once, before every input field: the label is what the input is scored after."""
    parts = parse_template(template)
    names = [part.name for part in parts if isinstance(part, Field)]
    if "label" not in names:
        raise ConfigError(f"{CHANNEL_HINT}, the prompt names the label before the input: put {{label}} where "
                          "the label's verbalization goes, e.g. \"Topic: {label}\\nArticle: {text}\"",
                          source=source, key=key)
    if names.count("label") > 1:
        raise ConfigError(f"{CHANNEL_HINT}, {{label}} appears once (it is where the label is named)",
                          source=source, key=key)
    # Fields before {label} are context (a pair's premise, read with the label); those after it are scored.
    fields = [name for name in names if name not in RESERVED_PLACEHOLDERS]
    if not any(name not in RESERVED_PLACEHOLDERS for name in names[names.index("label") + 1:]):
        raise ConfigError(f"{CHANNEL_HINT}, {{label}} comes before {{{fields[-1]}}}: the input is what is "
                          "scored, after the label (fields before it are context, not scored)",
                          source=source, key=key)


def context_fields(template: str) -> tuple[str, ...]:
    """The input fields before ``{label}``: context the label is read with, not scored."""
    names = [part.name for part in parse_template(template) if isinstance(part, Field)]
    before = names[:names.index("label")] if "label" in names else []
    return tuple(name for name in before if name not in RESERVED_PLACEHOLDERS)


def verbalization(completion: str) -> str:
    """What ``{label}`` becomes for one of a label's completions."""
    return completion.strip()


def channel_template(template: str) -> str:
    """A direct template turned round: what followed the input (the label's lead-in) names the label
    on the line before the input's first line.

    >>> print(channel_template("Intro.\\n\\nArticle: {text}\\nTopic:"))
    Intro.
    <BLANKLINE>
    Topic: {label}
    Article: {text}
    >>> channel_template("{text} ->")
    '-> {label}\\n{text}'
    """
    fields = [m for m in TOKEN.finditer(template) if m.group(1) and m.group(1) not in RESERVED_PLACEHOLDERS]
    head, body, tail = template[:fields[0].start()], template[fields[0].start():fields[-1].end()], \
        template[fields[-1].end():]
    cut = head.rfind("\n") + 1
    lead = tail.strip()
    return head[:cut] + (f"{lead} {{label}}" if lead else "{label}") + "\n" + head[cut:] + body


def as_channel(config: Config) -> Config:
    """``config`` scored the other way round (its prompts turned by :func:`channel_template`), with the
    nearest settings channel scoring allows: ``chars`` -> ``sum``, a refused calibration -> ``none``."""
    if config.scoring.channel:
        return config
    if config.chat or config.decision.mode != "single":
        raise ConfigError("only single-label configs with a plain template prompt can be scored as a channel",
                          source=config.source, key="scoring.direction")
    assert isinstance(config.prompt, str)
    scoring = config.scoring
    scoring = replace(scoring, direction="channel",
                      normalize=scoring.normalize if scoring.normalize in CHANNEL_NORMALIZATIONS else "sum",
                      calibration="none" if scoring.calibration in CHANNEL_REFUSED_CALIBRATIONS
                      else scoring.calibration)
    search = replace(config.search, prompts=tuple(channel_template(p) for p in config.search.prompts))
    turned = replace(config, prompt=channel_template(config.prompt), scoring=scoring, search=search)
    check_direction(turned)
    return turned


RERANK_HINT = "scoring.rerank scores direct scoring's top labels again as P(input | label)"
MAX_WEIGHT = 100.0


def parse_rerank(data: Any, *, source: str) -> Rerank | None:
    """The ``scoring.rerank`` mapping -> :class:`Rerank` (None: no rerank); ConfigError naming the key."""
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping such as {{top: 3, weight: 0.5}}, got {type(data).__name__}",
                          source=source, key="scoring.rerank")
    for key in data:
        if key not in ("top", "weight"):
            hint = " did you mean 'top'?" if str(key).startswith("top") else ""
            raise ConfigError(f"unknown key; expected one of: top, weight;{hint}" if hint else
                              "unknown key; expected one of: top, weight", source=source, key=f"scoring.rerank.{key}")
    top = data.get("top", Rerank.top)
    if isinstance(top, bool) or not isinstance(top, int) or top < 2:
        raise ConfigError(f"expected an integer >= 2, got {top!r}", source=source, key="scoring.rerank.top")
    weight = data.get("weight", Rerank.weight)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= weight <= MAX_WEIGHT:
        raise ConfigError(f"expected a number between 0 and {MAX_WEIGHT:g}, got {weight!r}", source=source,
                          key="scoring.rerank.weight")
    return Rerank(top=top, weight=float(weight))


RERANK_HINT = "scoring.rerank scores direct scoring's top labels again as P(input | label)"


def check_rerank(config: Config) -> None:
    """ConfigError for a ``scoring.rerank`` that cannot run: it reranks one direct, single-label
    decision, with the config's own plain prompt turned round (:func:`as_channel`)."""
    rerank = config.scoring.rerank
    if rerank is None:
        return
    source = config.source
    if config.scoring.channel:
        raise ConfigError(f"{RERANK_HINT}; this config already scores that way: drop scoring.rerank, or use "
                          "scoring.direction: direct", source=source, key="scoring.rerank")
    if config.decision.mode != "single":
        raise ConfigError(f"{RERANK_HINT}, which is a single-label decision; multi-label configs decide every "
                          "label on its own", source=source, key="scoring.rerank")
    if config.chat:
        raise ConfigError(f"{RERANK_HINT} from the prompt turned round, which needs a plain template prompt, "
                          "not chat messages", source=source, key="scoring.rerank")
    if rerank.top > len(config.labels):
        raise ConfigError(f"top is {rerank.top} but the config has {len(config.labels)} labels",
                          source=source, key="scoring.rerank.top")
    try:
        as_channel(replace(config, scoring=replace(config.scoring, rerank=None, calibration="none",
                                                   normalize="sum")))
    except ConfigError as exc:
        raise ConfigError(f"{RERANK_HINT}, and the config cannot be scored that way: {exc.message}",
                          source=source, key=exc.key or "scoring.rerank") from None
