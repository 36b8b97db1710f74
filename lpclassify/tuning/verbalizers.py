"""Verbalizer candidates: the surface forms a label might take as a completion, and sets of them to try.

For each label ``tune`` considers its config completions, the label's name, words of its
description and the alternatives listed under ``search.completions``, each in a few surface
variants (leading space or not, lower case, capitalized). All of them go into ONE label set
(:func:`candidate_config`), so one model pass scores every candidate of a prompt; the sets to
try (:func:`styles`, :func:`label_options`) are then subsets of those columns, evaluated in numpy.

>>> from lpclassify.config import load_config
>>> config = load_config({"prompt": "{text} ->", "labels": {"good": None, "bad": {"completions": [" awful"]}}})
>>> candidates(config)[1][:4]
(' awful', ' Awful', 'awful', 'Awful')
"""

from __future__ import annotations

import re
from dataclasses import replace

from ..config import Config, Label
from ..config.schema import PromptTemplate

STOPWORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "is", "it", "its", "of",
    "on", "or", "that", "the", "their", "this", "to", "was", "were", "with", "about", "into", "what", "which", "who",
    "whom", "how", "why", "when", "where"))
MAX_DESCRIPTION_WORDS = 4


def _variants(word: str) -> list[str]:
    """A word's surface forms: leading space or not, as written, lower case, capitalized."""
    word = word.strip()
    forms = dict.fromkeys([word, word.lower(), word[:1].upper() + word[1:]])
    return [" " + w for w in forms] + list(forms)


def _description_words(label: Label) -> list[str]:
    words = re.findall(r"[A-Za-z][A-Za-z'-]+", label.description or "")
    content = [w for w in words if w.lower() not in STOPWORDS and len(w) > 2]
    return list(dict.fromkeys(content))[:MAX_DESCRIPTION_WORDS]


def _own(config: Config, index: int) -> list[str]:
    """Every completion ``tune`` may try for one label, the config's own first."""
    label = config.labels[index]
    found = list(label.completions)
    for completion in (*label.completions, label.name.replace("_", " ")):
        found += _variants(completion)
    for completion in config.search.alternatives(label.name):
        found += [completion, *_variants(completion)]
    for word in _description_words(label):
        found += _variants(word)[:3]  # " word", " lower", " Capitalized": descriptions follow a space
    return list(dict.fromkeys(c for c in found if c.strip()))


def candidates(config: Config) -> tuple[tuple[str, ...], ...]:
    """Per label, the candidate completions (a completion two labels would share goes to the first that has it
    among its config completions, else to the first label that proposes it)."""
    proposed = [_own(config, i) for i in range(len(config.labels))]
    owner: dict[str, int] = {}
    for i, label in enumerate(config.labels):
        for completion in label.completions:
            owner.setdefault(completion, i)
    for i, found in enumerate(proposed):
        for completion in found:
            owner.setdefault(completion, i)
    return tuple(tuple(c for c in found if owner[c] == i) for i, found in enumerate(proposed))


def candidate_config(config: Config, prompt: PromptTemplate, per_label: tuple[tuple[str, ...], ...]) -> Config:
    """``config`` with ``prompt`` and every candidate as a completion, uncalibrated: the one model pass's label set."""
    labels = tuple(replace(label, completions=found, bias=0.0)
                   for label, found in zip(config.labels, per_label, strict=True))
    scoring = replace(config.scoring, calibration="none", calibration_file=None, temperature=1.0)
    return replace(config, prompt=prompt, labels=labels, scoring=scoring)


def styles(config: Config, per_label: tuple[tuple[str, ...], ...]) -> dict[str, tuple[tuple[str, ...], ...]]:
    """Named verbalizer sets applied to every label alike: ``{style: per-label completions}`` (duplicates dropped).

    ``config``: its own completions; ``name``/``Name``: the label's name after a space, as written or
    capitalized; ``config+listed``: its own plus ``search.completions``; ``description``: its name and
    its description's words; ``all``: every candidate.
    """
    out: dict[str, tuple[tuple[str, ...], ...]] = {}

    def pick(wanted: list[str], i: int) -> tuple[str, ...]:
        mine = [c for c in dict.fromkeys(wanted) if c in per_label[i]]
        return tuple(mine) or tuple(c for c in config.labels[i].completions if c in per_label[i]) or per_label[i][:1]

    labels = config.labels
    name = [label.name.replace("_", " ") for label in labels]
    sets = {
        "config": [list(label.completions) for label in labels],
        "name": [[" " + n] for n in name],
        "Name": [[" " + n[:1].upper() + n[1:]] for n in name],
        "config+listed": [[*label.completions, *config.search.alternatives(label.name)] for label in labels],
        "description": [[" " + n, *(" " + w for w in _description_words(label))]
                        for n, label in zip(name, labels, strict=True)],
        "all": [list(found) for found in per_label],
    }
    seen: set[tuple[tuple[str, ...], ...]] = set()
    for style, wanted in sets.items():
        chosen = tuple(pick(w, i) for i, w in enumerate(wanted))
        if chosen not in seen:
            seen.add(chosen)
            out[style] = chosen
    return out


def label_options(per_label: tuple[tuple[str, ...], ...],
                  style_sets: dict[str, tuple[tuple[str, ...], ...]]) -> list[list[tuple[str, ...]]]:
    """Per label, what the per-label refinement tries: every style's set for it, then each candidate alone."""
    out = []
    for i, found in enumerate(per_label):
        options = [chosen[i] for chosen in style_sets.values()] + [(c,) for c in found]
        out.append(list(dict.fromkeys(options)))
    return out
