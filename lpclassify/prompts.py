"""Prompt templates: a config's template + an input text -> the prompt string.

Only the placeholders the config validated (``{text}``, ``{labels}``; ``{label}`` and
``{description}`` in multi-label templates) are replaced; every other brace is literal, so
templates may contain JSON or code without escaping.

>>> render("Review: {text}\\nSentiment:", text="Great fun.")
'Review: Great fun.\\nSentiment:'
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .config import Label

_PLACEHOLDER = re.compile(r"\{(text|labels|label|description)\}")


def render(template: str, **values: str) -> str:
    """Substitute ``{name}`` placeholders in one pass (a text containing "{labels}" stays as is)."""
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), template)


def describe_labels(labels: Sequence[Label]) -> str:
    """The ``{labels}`` placeholder: one label per line, with its description when it has one."""
    return "\n".join(f"- {label.name}: {label.description}" if label.description else f"- {label.name}"
                     for label in labels)


def static_prefix(template: str, **values: str) -> str:
    """The part of the rendered prompt before the text: the same for every input.

    The engine decodes it once and keeps it in the KV cache; it compares token ids rather
    than trusting this string to end on a token boundary.
    """
    head = template.split("{text}", 1)[0]
    return render(head, **values)
