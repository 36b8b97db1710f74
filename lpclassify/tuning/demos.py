"""Demonstrations and direction for ``tune``: which labelled examples go into the prompt, in which order,
and the prompt variants (direction x prompt x demonstrations per label) the search scores.

**Which.** Per label, its examples in a seeded random order; the first ``k`` of each label are the
demonstrations for ``k`` per label, so the sets for k = 1, 2, ... grow by one example per label
and every variant's demonstrations come from one pool. A label lends at most a third of its
examples, so every label keeps rows to be scored.

**Order.** Round-robin by label (the first example of every label, then the second of every label,
...): balanced, so no label is the majority of the prompt (majority-label bias, Zhao et al. 2021),
and interleaved, so no label's examples all come last (recency bias); what remains of the last
example's pull is a per-label offset, which the fitted bias or calibration the search also chooses
absorbs. A fixed rule, not a search over orders: the order is not tuned on the data it is scored on.

**Honesty.** The pool's rows are never scored: every variant, demonstrations or not, is scored
and compared on the other rows only, so no row is ever classified with itself in the prompt,
and the nested cross-validation estimate stays what it was (selection inside each outer fold,
winner scored on the fold). The pool is chosen without looking at any score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..config import Config
from ..config.direction import as_channel
from ..config.schema import Example, PromptTemplate
from ..inputs import Input

MAX_SHARE = 1 / 3  # a label lends at most this share of its examples as demonstrations
# Channel: each verbalization costs a pass of the input with a logit row per token (12x a direct pass on
# SST-2 with four per label: benchmarks/channel.py), so a label is named by its first completion only.
CHANNEL_VERBALIZATIONS = 1


@dataclass(frozen=True)
class Variant:
    """One prompt the search scores: a direction, one of the prompts, ``shots`` demonstrations per label."""

    direction: str
    prompt: int
    shots: int

    def describe(self) -> str:
        shots = f"{self.shots} demonstration(s) per label" if self.shots else "no demonstrations"
        return f"{self.direction}, prompt {self.prompt + 1}, {shots}"


def demo_pool(y: np.ndarray, n_labels: int, per_label: int, seed: int = 0) -> list[list[int]]:
    """Per label, the rows that may be its demonstrations, in the order they are used (see the module)."""
    rng = np.random.default_rng(seed)
    pool = []
    for label in range(n_labels):
        rows = np.flatnonzero(np.asarray(y) == label)
        rows = rows[rng.permutation(len(rows))]
        pool.append([int(r) for r in rows[: min(per_label, int(len(rows) * MAX_SHARE))]])
    return pool


def demonstrations(pool: Sequence[Sequence[int]], shots: int) -> list[int]:
    """The rows for ``shots`` per label, round-robin by label (fewer for a label with a smaller pool)."""
    return [found[j] for j in range(shots) for found in pool if j < len(found)]


def available_shots(pool: Sequence[Sequence[int]], wanted: Sequence[int]) -> list[int]:
    """The demonstration counts that give different prompts (a count past every label's pool adds nothing)."""
    most = max((len(found) for found in pool), default=0)
    return sorted({min(k, most) for k in wanted})


def examples_of(config: Config, texts: Sequence[Input], names: Sequence[str], rows: Sequence[int]) -> tuple[
        Example, ...]:
    """Labelled rows as the config's few-shot examples (their fields and label), in ``rows`` order."""
    out = []
    for row in rows:
        text = texts[row]
        values = {config.fields[0]: text} if isinstance(text, str) else {f: str(text[f]) for f in config.fields}
        out.append(Example(tuple(values.items()), (names[row],), f"tune example {row + 1}"))
    return tuple(out)


def channel_completions(config: Config) -> tuple[tuple[str, ...], ...]:
    """Per label, what channel scoring names it with: its first completion(s) that are different words."""
    out = []
    for label in config.labels:
        words: dict[str, str] = {}
        for completion in label.completions:
            words.setdefault(completion.strip().lower(), completion)
        out.append(tuple(words.values())[:CHANNEL_VERBALIZATIONS])
    return tuple(out)


def variant_config(config: Config, prompts: Sequence[PromptTemplate], variant: Variant,
                   examples: Sequence[Example], completions: Mapping[str, tuple[str, ...]] | None = None) -> Config:
    """``config`` with the variant's prompt, direction and demonstrations (and, for channel, its completions)."""
    out = replace(config, prompt=prompts[variant.prompt], examples=tuple(examples))
    if variant.direction == "channel":
        named = channel_completions(out)
        labels = tuple(replace(label, completions=found) for label, found in zip(out.labels, named, strict=True))
        out = as_channel(replace(out, labels=labels))
    if completions:
        out = replace(out, labels=tuple(replace(label, completions=completions.get(label.name, label.completions))
                                        for label in out.labels))
    return out
