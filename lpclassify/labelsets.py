"""A label set without a config file: label names (and, optionally, a prompt) -> a :class:`Config`.

What ``Classifier.from_labels``, ``lpclassify classify --labels`` and the server's zero-shot
endpoint (Hugging Face's ``candidate_labels``) build. The default prompt lists the labels, so the
model sees its choices before it answers; each label's completion is its name after a space, and
contextual calibration removes the model's preference for some names over others.

>>> config = labels_config(["urgent", "normal", "spam"])
>>> config.label_names, config.labels[0].completions, config.scoring.calibration
(('urgent', 'normal', 'spam'), (' urgent',), 'contextual')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .config import DEFAULT_MULTI_PROMPT, Config, parse_config
from .errors import ConfigError

DEFAULT_LABELS_PROMPT = (
    "Classify the text into one of these categories:\n{labels}\n\n"
    "Text: {text}\n"
    "Category:"
)
"""The prompt of a label set given without one (single-label): ``{labels}`` lists them, one per line."""

DEFAULT_SCORING: Mapping[str, Any] = {"normalize": "sum", "aggregate": "logsumexp", "calibration": "contextual"}


def split_labels(text: str) -> list[str]:
    """``"urgent, normal,spam"`` -> ``["urgent", "normal", "spam"]`` (the CLI's ``--labels``)."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise ConfigError(f"expected label names separated by commas, got {text!r}", source="--labels")
    return names


def labels_config(labels: Sequence[str] | Mapping[str, Any], prompt: str | None = None, model: str | None = None,
                  *, multi_label: bool = False, **settings: Any) -> Config:
    """The config of a label set: ``labels`` (names, or a config's ``labels`` mapping), the prompt
    (default :data:`DEFAULT_LABELS_PROMPT`), and further config sections in ``settings``."""
    if isinstance(labels, str) or not isinstance(labels, (Sequence, Mapping)):
        raise ConfigError(f"expected a list of label names, got {type(labels).__name__}", source="<labels>")
    if isinstance(labels, Sequence):
        labels = list(labels)
        bad = [name for name in labels if not isinstance(name, str) or not name.strip()]
        if bad:
            raise ConfigError(f"a label name must be a non-empty string, got {bad[0]!r}", source="<labels>")
        if len(set(labels)) != len(labels):
            dup = next(name for name in labels if labels.count(name) > 1)
            raise ConfigError(f"label {dup!r} is given twice", source="<labels>")
    if not labels:
        raise ConfigError("no labels: give at least two label names", source="<labels>")
    document: dict[str, Any] = {"name": "labels", "labels": labels, "scoring": dict(DEFAULT_SCORING)}
    if multi_label:
        document["decision"] = {"mode": "multi", "threshold": 0.5}
        document["prompt"] = prompt or DEFAULT_MULTI_PROMPT
        document["scoring"] = {"calibration": "none"}
    else:
        document["prompt"] = prompt or DEFAULT_LABELS_PROMPT
    if model is not None:
        document["model"] = model
    for key, value in settings.items():
        if isinstance(value, Mapping) and isinstance(document.get(key), Mapping):
            document[key] = {**document[key], **value}
        else:
            document[key] = value
    return parse_config(document, source="<labels>")
