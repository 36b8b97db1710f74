"""Which label each scored completion speaks for: the one ordering every part agrees on.

In single-label mode (and multi-label mode with one shared question) a label's completions
compete with the other labels'; in multi-label mode with a question per label each label is
asked its own yes/no question, so every label has its yes and its no completions. Scores,
explanations and the ``validate`` command all walk candidates in this order.

>>> from lpclassify.config import load_config
>>> config = load_config({"prompt": "{text} ->", "labels": {"a": {"completions": [" a", " A"]}, "b": None}})
>>> [(s.name, s.completion, s.answer) for s in make_slots(config)]
[('a', ' a', None), ('a', ' A', None), ('b', ' b', None)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Config


@dataclass(frozen=True)
class Slot:
    """One scored completion: its label's index and name, and (multi-label) whether it answers yes or no."""

    label: int
    name: str
    completion: str
    answer: str | None = None  # "yes" / "no" in multi-label mode

    @property
    def yes(self) -> bool:
        return self.answer != "no"


def make_slots(config: Config) -> tuple[Slot, ...]:
    """Every candidate completion of ``config``, in scoring order."""
    if config.decision.score_mode == "single":
        return tuple(Slot(i, label.name, completion) for i, label in enumerate(config.labels)
                     for completion in label.completions)
    multi = config.decision.multi
    return tuple(Slot(i, label.name, completion, answer) for i, label in enumerate(config.labels)
                 for answer, completions in (("yes", multi.yes), ("no", multi.no)) for completion in completions)


def completion_chars(slots: tuple[Slot, ...]) -> list[int]:
    """Characters of each completion (at least 1), for ``normalize: chars``."""
    return [len(slot.completion.strip()) or 1 for slot in slots]
