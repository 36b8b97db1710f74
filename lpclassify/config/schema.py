"""The typed, frozen form of a label-set config, and the choices each setting allows.

Nothing here reads files or validates: :mod:`.validate` builds these objects from a parsed
document, :mod:`.files` from a YAML file or the name of a shipped config.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .templates import template_fields

NORMALIZATIONS = ("sum", "mean", "chars")
AGGREGATIONS = ("logsumexp", "max")
SEARCHES = ("exhaustive", "top_k")
MODES = ("single", "multi")
# How multi-label mode scores: "questions" asks each label its own yes/no question; "shared" asks one
# question whose answers are the labels (they compete, as in single-label mode) and chooses every
# label whose probability reaches its threshold.
MULTI_SCORINGS = ("questions", "shared")
LONG_INPUT_POLICIES = ("truncate", "chunk")
TRUNCATE_SIDES = ("head", "tail", "middle")
EMPTY_TEXT_POLICIES = ("error", "abstain")
# direct: P(label | input), the label's completion scored after the input. channel (Min et al. 2022):
# P(input | label), the input scored after a prompt that names the label ({label}) before it.
DIRECTIONS = ("direct", "channel")

# Placeholders the config fills in; every other ``{name}`` is a field of the input record.
PROMPT_PLACEHOLDERS = ("labels",)
MULTI_PROMPT_PLACEHOLDERS = ("label", "description")
RESERVED_PLACEHOLDERS = ("labels", "label", "description")
DEFAULT_EXAMPLE_SEPARATOR = "\n\n"

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
class Message:
    """One turn of a chat prompt: its role (system, user, assistant, ...) and its content template."""

    role: str
    content: str


# A config's prompt: a plain template, or chat messages rendered with the model's chat template.
PromptTemplate = str | tuple[Message, ...]


@dataclass(frozen=True)
class Example:
    """A few-shot example: its fields' values and its label(s) (several only in multi-label mode)."""

    fields: tuple[tuple[str, str], ...]
    labels: tuple[str, ...]
    where: str = ""  # "examples[2]" or "examples.jsonl:3": for messages

    @property
    def values(self) -> dict[str, str]:
        return dict(self.fields)


@dataclass(frozen=True)
class Rerank:
    """``scoring.rerank``: direct scoring's ``top`` labels scored again as P(input | label) and decided
    by log p_direct + ``weight`` * log p_channel (see :mod:`lpclassify.rerank`)."""

    top: int = 3
    weight: float = 1.0


@dataclass(frozen=True)
class Scoring:
    normalize: str = "sum"
    aggregate: str = "logsumexp"
    calibration: str = "contextual"  # measured best across task types: benchmarks/reports/default-calibration.md
    content_free: tuple[str, ...] = DEFAULT_CONTENT_FREE
    calibration_file: str | None = None
    temperature: float = 1.0  # calibrated log-probabilities are divided by it before the label biases are added
    direction: str = "direct"

    @property
    def channel(self) -> bool:
        return self.direction == "channel"

    @property
    def label_aggregate(self) -> str:
        """How a label's completion scores combine. Channel: a label's verbalizations are a uniform
        mixture, p(x | label) = mean over them of p(x | verbalization), so ``logsumexp`` is a log-mean."""
        return "logmeanexp" if self.channel and self.aggregate == "logsumexp" else self.aggregate
    # "top_k": decode only the trie branches that can still reach the top decision.top_k (see lpclassify.top_k)
    search: str = "exhaustive"
    tolerance: float | None = None  # top_k: go on until the probabilities are exact to this share of themselves
    rerank: Rerank | None = None  # the top labels scored again the other way round (lpclassify.rerank)


@dataclass(frozen=True)
class MultiLabel:
    """How multi-label mode scores: a yes/no question per label (the answers it compares), or one
    shared question whose answers are the labels (``scoring: shared``; ``none`` names the label that
    stands for "none of these": scored like the others, never chosen)."""

    yes: tuple[str, ...] = (" yes", " Yes")
    no: tuple[str, ...] = (" no", " No")
    scoring: str = "questions"
    none: str | None = None


@dataclass(frozen=True)
class Decision:
    mode: str = "single"
    threshold: float = 0.0
    top_k: int = 1
    multi: MultiLabel = field(default_factory=MultiLabel)

    @property
    def score_mode(self) -> str:
        """How completions are scored: ``"single"`` when the labels compete in one distribution (single-label
        mode, and multi-label with ``multi.scoring: shared``), ``"multi"`` for a yes/no question per label."""
        return "multi" if self.mode == "multi" and self.multi.scoring == "questions" else "single"


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
    shorten_field: str | None = None  # the field long inputs are cut in; None: the longest


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
    prompt: str | tuple[Message, ...]  # a plain template, or chat messages rendered with the model's template
    labels: tuple[Label, ...]
    model: str = "default"
    description: str | None = None
    scoring: Scoring = field(default_factory=Scoring)
    decision: Decision = field(default_factory=Decision)
    runtime: Runtime = field(default_factory=Runtime)
    search: Search = field(default_factory=Search)
    source: str = "<mapping>"
    examples: tuple[Example, ...] = ()
    example_separator: str = DEFAULT_EXAMPLE_SEPARATOR

    @property
    def chat(self) -> bool:
        """True when the prompt is chat messages, rendered with the model's own chat template."""
        return not isinstance(self.prompt, str)

    @property
    def templates(self) -> tuple[str, ...]:
        """The prompt's template text(s): the plain template, or each message's content."""
        return (self.prompt,) if isinstance(self.prompt, str) else tuple(m.content for m in self.prompt)

    @property
    def fields(self) -> tuple[str, ...]:
        """The input fields the prompt uses (``("text",)`` for most configs), first use first."""
        return tuple(name for name in template_fields(*self.templates) if name not in RESERVED_PLACEHOLDERS)

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(label.name for label in self.labels)

    @property
    def biases(self) -> tuple[float, ...]:
        """Each label's ``bias``, in label order."""
        return tuple(label.bias for label in self.labels)
