"""``scoring.rerank`` as settings of the search: a direct setting plus the channel pass of its prompt.

A rerank (:mod:`lpclassify.rerank`) scores a direct config's ``top`` labels again as P(input | label)
with :func:`lpclassify.rerank.channel_config`: the same prompt turned round, normalize ``sum``, a
label's completions (stripped) as its verbalizations, a uniform mixture of them. ``tune`` already
makes that channel pass when it searches the channel direction (variant ``channel``, same prompt,
no demonstrations), over every label, so a rerank candidate costs numpy only: the direct setting's
probabilities (fitted bias included), its ``top`` labels per row, their channel log-likelihoods,
combined as :func:`lpclassify.rerank.combine` does (:meth:`.search.Search.finish`).

It is searched only where that is exact, i.e. where the rerank stage would score what the pass scored:

* no demonstrations (neither the config's nor tune's): the rerank's channel config renders them with
  only the top labels present;
* no ``{labels}`` in the prompt: the rerank lists only the top labels there, the pass all of them;
* every verbalization of the direct setting's completions was a column of the channel pass (the
  pass names each label by its first completion, :data:`.demos.CHANNEL_VERBALIZATIONS`), once per label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..config import Config
from ..config.schema import PromptTemplate
from ..config.templates import Field, parse_template
from .demos import Variant
from .rerank_maths import channel_log_likelihoods
from .search import PromptScores, RerankSetting, Setting

TOPS = (2, 3, 5)  # labels reranked (those above the number of labels are left out)
WEIGHTS = (0.3, 0.5, 1.0)  # the channel's weight in log p_direct + weight * log p_channel


def rerank_pairs(config: Config, prompts: Sequence[PromptTemplate], variants: Sequence[Variant]) -> dict[int, int]:
    """Direct variant index -> the index of the channel pass its rerank reads (see the module for which)."""
    if config.examples:
        return {}
    out = {}
    for i, variant in enumerate(variants):
        template = prompts[variant.prompt]
        if variant != Variant("direct", variant.prompt, 0) or not isinstance(template, str):
            continue
        if any(isinstance(part, Field) and part.name == "labels" for part in parse_template(template)):
            continue
        turned = Variant("channel", variant.prompt, 0)
        if turned in variants:
            out[i] = variants.index(turned)
    return out


def rerank_settings(settings: Sequence[Setting], scores: Sequence[PromptScores], pairs: dict[int, int],
                    n_labels: int) -> list[Setting]:
    """Every direct setting of a paired variant whose verbalizations the channel pass scored, with each
    ``top`` x ``weight`` (a setting's reranks one after another: the search fits its bias once for them)."""
    tops = [top for top in TOPS if top <= n_labels]
    out = []
    for setting in settings:
        channel = pairs.get(setting.prompt)
        if channel is None or setting.rerank is not None or \
                channel_log_likelihoods(scores[channel], setting.completions, setting.aggregate) is None:
            continue
        out += [replace(setting, rerank=RerankSetting(channel, top, weight)) for top in tops for weight in WEIGHTS]
    return out
