"""Texts that do not fit the context: cut them (``truncate``) or score them in windows (``chunk``).

Only the text is ever shortened, never the template around it or the completions after it:
every candidate cut is rendered into the full prompts and encoded, and kept only when the
longest prompt + completion fits ``n_ctx``. Cuts fall on whitespace where there is some.

Finding the longest cut by bisection would tokenize a 100,000-character text a dozen times;
instead :meth:`Fitter.fit` starts from an estimate and rescales the length by how many tokens
the text took, which lands a cut at 90-97 % of the room within two or three encodes.

>>> toks = lambda s, add_bos: [ord(c) for c in s]            # a toy one-char-per-token tokenizer
>>> from lpclassify.tokenization import encode_pairs
>>> fitter = Fitter(lambda t: encode_pairs(toks, [("Text: " + t + "\\nLabel:", " yes")]), n_ctx=30)
>>> text = "one two three four five six seven eight nine ten"
>>> [piece for _, piece in fitter.windows(text)]
['one two three', 'four five six', 'seven eight', 'nine ten']
>>> fitter.truncate(text, "tail")[1]
'nine ten'
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .errors import InputError
from .tokenization import EncodedText

Encode = Callable[[str], EncodedText]

FULL_ENOUGH = 0.9  # a cut whose text takes this share of the room for text is good enough
AIM = 0.97  # rescaling aims a little under the room: tokens per character vary along a text
MAX_PROBES = 8
FIRST_CHARS_PER_TOKEN = 4.0  # the first guess (English prose); corrected after one probe
ELLIPSIS = " … "
SLACK = 64  # characters  # joins the kept head and tail of a text cut in the middle


class Fitter:
    """Cuts of one classifier's texts that fit its context. ``encode(text)`` renders and tokenizes."""

    def __init__(self, encode: Encode, n_ctx: int, *, max_candidate: int | None = None,
                 text_in_candidate: bool = True) -> None:
        self.encode = encode
        self.n_ctx = n_ctx
        # Channel scoring: every candidate may take at most this many tokens; when the text is in
        # them, that bounds the text too (a field before {label} is in the prompt: it is not).
        self.max_candidate = max_candidate
        self.text_in_candidate = text_in_candidate
        self._overhead: int | None = None

    @property
    def overhead(self) -> int:
        """Tokens of the template and longest completion around a one-character text."""
        if self._overhead is None:
            probe = self.encode(".")
            self._overhead = probe.n_tokens - 1
            if self.max_candidate is not None and self.text_in_candidate:  # the room: what a candidate may take
                self.n_ctx = min(self.n_ctx, len(probe.prompt) + self.max_candidate)
            if self._overhead >= self.n_ctx:
                raise InputError(f"the prompt template and completions alone take {self._overhead} tokens, which "
                                 f"leaves no room for the text in n_ctx={self.n_ctx}; raise runtime.n_ctx or "
                                 "shorten the template")
        return self._overhead

    def fits(self, encoded: EncodedText) -> bool:
        if self.max_candidate is not None:
            self.overhead  # noqa: B018 - sets the room a candidate leaves
            if max(len(c.tokens) for c in encoded.candidates) > self.max_candidate:
                return False
        return encoded.n_tokens <= self.n_ctx

    def truncate(self, text: str, side: str) -> tuple[EncodedText, str]:
        """The longest (near enough) cut of ``text`` that fits, keeping its ``head``, ``tail`` or ``middle``."""
        if side == "head":
            return self.fit(lambda n: _head(text, n), len(text))
        if side == "tail":
            return self.fit(lambda n: _tail(text, n), len(text))
        if side == "middle":
            return self.fit(lambda n: _head(text, (n + 1) // 2) + ELLIPSIS + _tail(text, n // 2)
                            if n < len(text) else text, len(text))
        raise ValueError(f"unknown truncate side {side!r}")

    def windows(self, text: str) -> list[tuple[EncodedText, str]]:
        """Consecutive windows covering all of ``text`` (but the whitespace between them), each fitting,
        of about equal length: their encodings and texts."""
        widest = len(self.fit(lambda n: _head(text, n), len(text))[1])
        # As many windows as the widest fitting one needs, evened out (no stub at the end); the
        # slack covers the word each cut gives back.
        size = min(widest, math.ceil(len(text) / math.ceil(len(text) / widest)) + max(widest // 16, 8))
        out: list[tuple[EncodedText, str]] = []
        start = 0
        while start < len(text):
            rest = text[start:]
            encoded, piece = self.fit(lambda n, rest=rest: _head(rest, n), min(len(rest), size), guess=size)
            out.append((encoded, piece))
            start += len(piece)
            while start < len(text) and text[start].isspace():  # the cut's whitespace starts no window
                start += 1
        return out

    def fit(self, piece: Callable[[int], str], limit: int, *, guess: int | None = None) -> tuple[EncodedText, str]:
        """``piece(n)`` for a large ``n <= limit`` that fits, with its encoding.

        ``piece(n)`` must grow with ``n`` and be at most ``n`` characters long.
        """
        room = self.n_ctx - self.overhead
        n = max(1, min(limit, guess or int(room * FIRST_CHARS_PER_TOKEN)))
        best: tuple[int, EncodedText, str] | None = None
        for _ in range(MAX_PROBES):
            text = piece(n)
            encoded = self.encode(text)
            used = max(encoded.n_tokens - self.overhead, 1)  # tokens the text took
            fits = self.fits(encoded)
            if fits and (best is None or n > best[0]):
                best = (n, encoded, text)
            if fits and (n >= limit or used >= FULL_ENOUGH * room):
                break
            proposal = min(limit, int(n * AIM * room / used))
            if not fits:
                proposal = min(proposal, n - 1)
            if proposal < 1 or (best is not None and proposal <= best[0]):
                break
            n = proposal
        while best is None and n > 1:  # an odd tokenization defeated the estimate: halve until it fits
            n //= 2
            text = piece(n)
            encoded = self.encode(text)
            if self.fits(encoded):
                best = (n, encoded, text)
        if best is None and not self.text_in_candidate:
            raise InputError(f"the input's scored part (the fields after {{label}}) takes more than the "
                             f"{self.max_candidate} tokens channel scoring reads per decode, and the field being "
                             "cut comes before {label}: set runtime.shorten_field to a field after it")
        if best is None or not best[2]:
            raise InputError(f"not even one character of the text fits n_ctx={self.n_ctx} after the template and "
                             "completions; raise runtime.n_ctx")
        return best[1], best[2]


def _head(text: str, n: int) -> str:
    """The first ``n`` characters at most, ending before whitespace when there is some in the second half."""
    if n >= len(text):
        return text
    cut = text[:n]
    if not text[n].isspace():
        space = max(cut.rfind(" "), cut.rfind("\n"), cut.rfind("\t"))
        if space >= n // 2:
            cut = cut[:space]
    return cut.rstrip()


def _tail(text: str, n: int) -> str:
    """The last ``n`` characters at most, starting after whitespace when there is some in the first half."""
    if n >= len(text):
        return text
    if n <= 0:
        return ""
    cut = text[len(text) - n:]
    if not text[len(text) - n - 1].isspace():
        spaces = [i for i in (cut.find(" "), cut.find("\n"), cut.find("\t")) if i >= 0]
        if spaces and min(spaces) <= n // 2:
            cut = cut[min(spaces) + 1:]
    return cut.lstrip()
