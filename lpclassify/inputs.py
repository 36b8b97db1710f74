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


def encoding_problem(value: Input) -> str | None:
    """Why ``value`` cannot reach the model as UTF-8, or None when it can.

    A command-line argument that was not valid UTF-8 arrives as a string holding lone
    surrogates (Python's ``surrogateescape``: byte 0xE9 becomes ``'\\udce9'``).

    >>> encoding_problem("caf\\udce9") is not None, encoding_problem({"a": "café"})
    (True, None)
    """
    texts = [value] if isinstance(value, str) else [v for v in value.values() if isinstance(v, str)]
    for text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            code = ord(text[exc.start])
            what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"a lone surrogate U+{code:04X}"
            return (f"not valid UTF-8 ({what} at character {exc.start + 1}); convert the text to UTF-8, "
                    "e.g. with iconv")
    return None
