"""The optional ``search:`` section: what ``lpclassify tune`` may try besides the config's own choices.

::

    search:
      prompts:                      # alternative templates (same placeholders as prompt)
        - "Question: {text}\\nThe question asks for"
      completions:                  # alternative completions per label
        person: [" a person", " who"]

Classifying ignores this section; ``tune`` reads it (see :mod:`lpclassify.tuning`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import ConfigError
from .schema import Search

CheckTemplate = Callable[[str, str], str]  # (template, dotted key) -> the template as used


def parse_search(data: Any, *, source: str, label_names: Sequence[str], check_template: CheckTemplate) -> Search:
    """The ``search`` mapping -> :class:`Search`; ConfigError naming the dotted key for what is wrong."""
    if data is None:
        return Search()
    if not isinstance(data, Mapping):
        raise ConfigError("expected a mapping with 'prompts' and/or 'completions'", source=source, key="search")
    for key in data:
        if key not in ("prompts", "completions"):
            raise ConfigError("unknown key; expected one of: prompts, completions", source=source,
                              key=f"search.{key}")
    prompts_raw = data.get("prompts", [])
    if isinstance(prompts_raw, str):
        prompts_raw = [prompts_raw]
    if not isinstance(prompts_raw, list) or not all(isinstance(p, str) for p in prompts_raw):
        raise ConfigError("expected a list of prompt templates (strings)", source=source, key="search.prompts")
    prompts = tuple(dict.fromkeys(check_template(p, f"search.prompts.{i}") for i, p in enumerate(prompts_raw)))
    raw = data.get("completions", {}) or {}
    if not isinstance(raw, Mapping):
        raise ConfigError("expected a mapping of label names to lists of completions", source=source,
                          key="search.completions")
    completions = []
    for label, values in raw.items():
        key = f"search.completions.{label}"
        if label not in label_names:
            raise ConfigError(f"not a label of this config (labels: {', '.join(label_names)})", source=source,
                              key=key)
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
            raise ConfigError("expected a non-empty list of completions (strings with more than whitespace)",
                              source=source, key=key)
        completions.append((str(label), tuple(dict.fromkeys(values))))
    return Search(prompts, tuple(completions))
