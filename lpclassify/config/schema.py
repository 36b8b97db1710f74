"""The typed, frozen form of a label-set config, and the choices each setting allows.

Nothing here reads files or validates: :mod:`.validate` builds these objects from a parsed
document, :mod:`.files` from a YAML file or the name of a shipped config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

NORMALIZATIONS = ("sum", "mean", "chars")
AGGREGATIONS = ("logsumexp", "max")
MODES = ("single", "multi")
LONG_INPUT_POLICIES = ("truncate", "chunk")
TRUNCATE_SIDES = ("head", "tail", "middle")
EMPTY_TEXT_POLICIES = ("error", "abstain")

# Placeholders a template may use; any other ``{identifier}`` is a typo.
PROMPT_PLACEHOLDERS = ("text", "labels")
MULTI_PROMPT_PLACEHOLDERS = ("text", "label", "description")
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

DEFAULT_MULTI_PROMPT = (
    "Text: {text}\nQuestion: Is this text about {label}? Answer yes or no.\nAnswer:"
)
DEFAULT_CONTENT_FREE = ("N/A", "", "[MASK]")


@dataclass(frozen=True)
class Label:
    """One label: its name, the completions that stand for it, an optional description."""

    name: str
    completions: tuple[str, ...]
    description: str | None = None
    threshold: float | None = None  # multi-label: overrides decision.threshold
    bias: float = 0.0  # nats added to this label's calibrated log-probability (single) or yes log-odds (multi)


@dataclass(frozen=True)
class Scoring:
    normalize: str = "sum"
    aggregate: str = "logsumexp"
    calibration: str = "none"
    content_free: tuple[str, ...] = DEFAULT_CONTENT_FREE
    calibration_file: str | None = None
    temperature: float = 1.0  # calibrated log-probabilities are divided by it before the label biases are added


@dataclass(frozen=True)
class MultiLabel:
    """The answers multi-label mode compares for each label's yes/no question."""

    yes: tuple[str, ...] = (" yes", " Yes")
    no: tuple[str, ...] = (" no", " No")


@dataclass(frozen=True)
class Decision:
    mode: str = "single"
    threshold: float = 0.0
    top_k: int = 1
    multi: MultiLabel = field(default_factory=MultiLabel)


@dataclass(frozen=True)
class Runtime:
    """Engine knobs; ``None`` means "let the backend choose"."""

    n_ctx: int = 1024
    batch_size: int = 8
    threads: int | None = None
    n_gpu_layers: int = 0
    long_inputs: str = "truncate"
    truncate_side: str = "head"
    empty_text: str = "error"


@dataclass(frozen=True)
class Search:
    """What ``lpclassify tune`` may try besides the config's own prompt and completions (the ``search:`` section)."""

    prompts: tuple[str, ...] = ()
    completions: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (label, alternative completions)

    def alternatives(self, label: str) -> tuple[str, ...]:
        return next((found for name, found in self.completions if name == label), ())


@dataclass(frozen=True)
class Config:
    name: str
    prompt: str
    labels: tuple[Label, ...]
    model: str = "default"
    description: str | None = None
    scoring: Scoring = field(default_factory=Scoring)
    decision: Decision = field(default_factory=Decision)
    runtime: Runtime = field(default_factory=Runtime)
    search: Search = field(default_factory=Search)
    source: str = "<mapping>"

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(label.name for label in self.labels)

    @property
    def biases(self) -> tuple[float, ...]:
        """Each label's ``bias``, in label order."""
        return tuple(label.bias for label in self.labels)
