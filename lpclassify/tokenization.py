"""Joint prompt+completion tokenization, split at the prompt boundary.

A completion is never tokenized alone and glued on: byte-level BPE (SmolLM2) and
SentencePiece (Gemma) both merge across the boundary, and a leading space changes the
token. Instead, for each completion C we tokenize P + C as a whole and find where the ids
of P alone stop being a prefix of it; everything from there on is what C is scored on.
Trailing whitespace of the prompt is moved onto the completion first (as
lm-evaluation-harness does), so "Answer: " + "yes" is scored as "Answer:" + " yes".

>>> toks = lambda s, add_bos: [ord(c) for c in s]        # a toy one-char-per-token tokenizer
>>> enc = encode_candidates(toks, "A: ", ["yes", "no"])
>>> enc.prompt, [c.tokens for c in enc.candidates]
((65, 58), ((32, 121, 101, 115), (32, 110, 111)))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import InputError

Tokenize = Callable[[str, bool], list[int]]


@dataclass(frozen=True)
class Candidate:
    """One completion of one text, as tokens following the text's shared prompt tokens.

    ``tokens`` may begin with a few tokens that still belong to the prompt (where the
    boundary merged); only the last ``n_scored`` tokens are the completion's own and count
    towards its score.
    """

    completion: str
    tokens: tuple[int, ...]
    n_scored: int


@dataclass(frozen=True)
class EncodedText:
    """A text's prompt tokens (shared by all its candidates) and its candidates."""

    prompt: tuple[int, ...]
    candidates: tuple[Candidate, ...]

    @property
    def n_tokens(self) -> int:
        """Tokens of the longest prompt+candidate sequence (what must fit in the context)."""
        return len(self.prompt) + max(len(candidate.tokens) for candidate in self.candidates)


def split_trailing_whitespace(prompt: str) -> tuple[str, str]:
    """``"Answer: "`` -> ``("Answer:", " ")``."""
    core = prompt.rstrip()
    return core, prompt[len(core):]


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def encode_candidates(tokenize: Tokenize, prompt: str, completions: Sequence[str]) -> EncodedText:
    """Tokenize ``prompt + completion`` for every completion and split at the prompt boundary.

    ``tokenize(text, add_bos)`` must add BOS itself when the model wants one (exactly once).
    """
    return encode_pairs(tokenize, [(prompt, completion) for completion in completions])


def encode_pairs(tokenize: Tokenize, pairs: Sequence[tuple[str, str]]) -> EncodedText:
    """Like :func:`encode_candidates`, but every candidate may have a prompt of its own.

    Multi-label mode asks one question per label about the same text; encoded together,
    the text's tokens become the shared prompt and each label's question a trie branch.
    """
    contexts: dict[str, list[int]] = {}
    joined: list[tuple[str, list[int], int]] = []
    for prompt, completion in pairs:
        core, trailing = split_trailing_whitespace(prompt)
        if core not in contexts:
            contexts[core] = tokenize(core, True)
        context = contexts[core]
        full = tokenize(core + trailing + completion, True)
        boundary = common_prefix_length(context, full)
        if boundary >= len(full):
            raise InputError(f"the completion {completion!r} adds no tokens after the prompt")
        joined.append((completion, full, boundary))
    first = joined[0][1]
    shared = min(min(boundary, common_prefix_length(first, full)) for _, full, boundary in joined)
    if shared == 0:
        raise InputError("the prompt tokenizes to nothing the completions can follow; "
                         "start the template with some fixed text")
    candidates = tuple(Candidate(completion, tuple(full[shared:]), len(full) - boundary)
                       for completion, full, boundary in joined)
    return EncodedText(prompt=tuple(first[:shared]), candidates=candidates)
