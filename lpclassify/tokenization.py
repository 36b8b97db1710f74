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
((65, 58), [(32, 121, 101, 115), (32, 110, 111)])

Special tokens (``<|im_start|>``) come only from the config's and the chat template's own text, a
:class:`Segment` with ``template=True``: the input's text is always tokenized as text, so a review
that contains ``<|im_end|>`` cannot end the turn. Between special tokens, all text (template,
input, completion) is tokenized as one string, exactly as llama.cpp's own special-token parsing
splits it.

>>> specials = lambda text: {"<s>": 1} if "<s>" in text else {}
>>> tokenize_prompt(toks, Prompt((Segment("<s>A", True), Segment("<s>"))), False, specials)
[1, 65, 60, 115, 62]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .errors import InputError

Tokenize = Callable[[str, bool], list[int]]  # (text, add_bos) -> ids; special-token strings stay text
Specials = Callable[[str], Mapping[str, int]]  # template text -> the special tokens in it, by their text


@dataclass(frozen=True)
class Segment:
    """A stretch of prompt text: the template's own (special tokens parsed) or data (the input: never)."""

    text: str
    template: bool = False


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt as segments. ``exact_end``: its trailing whitespace is the template's and
    stays in the prompt (a chat template's generation prompt ends with a newline the reply follows)."""

    segments: tuple[Segment, ...]
    exact_end: bool = False

    def __str__(self) -> str:
        return "".join(segment.text for segment in self.segments)

    def plus(self, text: str) -> Prompt:
        """The prompt followed by data ``text`` (a completion)."""
        return Prompt((*self.segments, Segment(text)), self.exact_end)

    def rstrip(self) -> tuple[Prompt, str]:
        """The prompt without its trailing whitespace, and that whitespace."""
        segments = list(self.segments)
        trailing = ""
        while segments:
            last = segments[-1]
            core = last.text.rstrip()
            trailing = last.text[len(core):] + trailing
            if core:
                segments[-1] = Segment(core, last.template)
                break
            segments.pop()
        return Prompt(tuple(segments), self.exact_end), trailing


def tokenize_prompt(tokenize: Tokenize, prompt: str | Prompt, add_bos: bool,
                    specials: Specials | None = None) -> list[int]:
    """Token ids of a prompt: special tokens from template segments, all other text tokenized jointly.

    BOS comes first when ``add_bos`` and the model wants it, once: not again when the template's
    text already starts with it (a chat template's ``{{ bos_token }}``).
    """
    if isinstance(prompt, str):
        return tokenize(prompt, add_bos)
    pieces: list[str | int] = []  # runs of text and special token ids
    run: list[str] = []
    for segment in prompt.segments:
        found = specials(segment.text) if segment.template and specials is not None else {}
        if not found:
            run.append(segment.text)
            continue
        pattern = re.compile("|".join(re.escape(t) for t in sorted(found, key=len, reverse=True)))
        last = 0
        for match in pattern.finditer(segment.text):
            run.append(segment.text[last:match.start()])
            pieces += ["".join(run), found[match.group(0)]]
            run = []
            last = match.end()
        run.append(segment.text[last:])
    pieces.append("".join(run))
    if len(pieces) == 1:
        return tokenize(str(pieces[0]), add_bos)
    ids: list[int] = []
    for piece in pieces:
        if isinstance(piece, int):
            ids.append(piece)
        elif piece:
            ids += tokenize(piece, False)
    bos = tokenize("", True) if add_bos else []
    return ids if ids[:len(bos)] == bos else bos + ids


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


def split_trailing_whitespace(prompt: str | Prompt) -> tuple[str | Prompt, str]:
    """``"Answer: "`` -> ``("Answer:", " ")``; a prompt with an exact end keeps its whitespace."""
    if isinstance(prompt, Prompt):
        return (prompt, "") if prompt.exact_end else prompt.rstrip()
    core = prompt.rstrip()
    return core, prompt[len(core):]


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def encode_candidates(tokenize: Tokenize, prompt: str | Prompt, completions: Sequence[str],
                      specials: Specials | None = None) -> EncodedText:
    """Tokenize ``prompt + completion`` for every completion and split at the prompt boundary.

    ``tokenize(text, add_bos)`` must add BOS itself when the model wants one (exactly once).
    """
    return encode_pairs(tokenize, [(prompt, completion) for completion in completions], specials)


def encode_pairs(tokenize: Tokenize, pairs: Sequence[tuple[str | Prompt, str | Prompt]],
                 specials: Specials | None = None) -> EncodedText:
    """Like :func:`encode_candidates`, but every candidate may have a prompt of its own.

    Multi-label mode asks one question per label about the same text; encoded together,
    the text's tokens become the shared prompt and each label's question a trie branch.
    Channel scoring's completion is the input itself (a :class:`Prompt` of segments, after a
    prompt per label that names it).
    """
    contexts: dict[str | Prompt, list[int]] = {}
    joined: list[tuple[str, list[int], int]] = []
    for prompt, completion in pairs:
        core, trailing = split_trailing_whitespace(prompt)
        if core not in contexts:
            contexts[core] = tokenize_prompt(tokenize, core, True, specials)
        context = contexts[core]
        if isinstance(completion, Prompt):
            head = core if isinstance(core, Prompt) else Prompt((Segment(core, True),))
            whole: str | Prompt = Prompt((*head.segments, Segment(trailing), *completion.segments), head.exact_end)
            completion = str(completion)
        else:
            whole = core.plus(trailing + completion) if isinstance(core, Prompt) else core + trailing + completion
        full = tokenize_prompt(tokenize, whole, True, specials)
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
