"""What a classifier classifies: a text, or a record of named fields for templates that use several.

A template that only uses ``{text}`` takes plain strings; one that uses other fields (``{premise}``,
``{hypothesis}``) takes mappings from field names to strings: a JSONL object, a CSV row, a
Python dict. Nothing here knows templates; :mod:`lpclassify.prompts` checks what an input holds.

>>> input_words({"premise": "A dog runs.", "hypothesis": "An animal moves."})
'A dog runs. An animal moves.'
>>> is_blank({"premise": " ", "hypothesis": ""}), is_blank("ok")
(True, False)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TypeVar, Union

Input = Union[str, Mapping[str, str]]  # noqa: UP007 - a runtime alias, Python 3.10 reads it
T = TypeVar("T")


def input_words(value: Input) -> str:
    """The input's text, its fields' values joined by spaces (for word counts and domain inputs)."""
    if isinstance(value, str):
        return value
    return " ".join(v for v in value.values() if isinstance(v, str))


def is_blank(value: Input) -> bool:
    """True when there is nothing to classify: an empty text, or a record whose every field is blank."""
    return not input_words(value).strip()


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last one shorter), read lazily: the one way streams are cut.

    >>> [len(c) for c in chunks(range(7), 3)]
    [3, 3, 1]
    """
    size = max(1, size)
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
