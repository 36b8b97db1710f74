"""Label-set configs: YAML (or a mapping, or a shipped config's name) -> typed, frozen objects, validated once.

A config names the model, the prompt template, the labels with their candidate
completions, and how scores become a decision::

    name: sentiment
    model: default
    prompt: |
      Review: {text}
      Sentiment:
    labels:
      positive: {completions: [" positive"]}
      negative: {completions: [" negative"]}

Every problem is a :class:`~lpclassify.errors.ConfigError` naming the file, the dotted
key and what was expected, e.g. ``sentiment.yaml: scoring.normalise: unknown key; did you
mean 'normalize'?``.

* :mod:`.schema` -- the frozen dataclasses and the allowed choices;
* :mod:`.validate` -- a parsed document -> :class:`Config`, key by key;
* :mod:`.files` -- YAML files and shipped config names (``load_config("sentiment")``).
"""

from .files import load_config, resolve_config, shipped_configs
from .schema import (
    AGGREGATIONS,
    DEFAULT_CONTENT_FREE,
    DEFAULT_MULTI_PROMPT,
    MODES,
    NORMALIZATIONS,
    Config,
    Decision,
    Label,
    MultiLabel,
    Rerank,
    Runtime,
    Scoring,
)
from .validate import parse_config, with_runtime

__all__ = [
    "AGGREGATIONS", "DEFAULT_CONTENT_FREE", "DEFAULT_MULTI_PROMPT", "MODES", "NORMALIZATIONS",
    "Config", "Decision", "Label", "MultiLabel", "Rerank", "Runtime", "Scoring",
    "load_config", "parse_config", "resolve_config", "shipped_configs", "with_runtime",
]
