"""A config's prompts, tokenized and scored by a backend: inputs -> :class:`~lpclassify.scores.RawScores`.

The scorer renders each input (a text, or a record of the prompt's fields) into its (prompt,
completion) pairs, encodes them jointly (shortening inputs that do not fit, or cutting them
into windows), asks the backend for per-token log-probs and sums them per completion. It knows
nothing of calibration or decisions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .backends.base import Backend
from .config import Config
from .config.direction import context_fields, verbalization
from .inputs import Input
from .long_inputs import Fitter
from .prompts import Prompter
from .scores import CompletionScore, RawScores, completion_score, mean_score
from .slots import completion_chars, make_slots
from .tokenization import EncodedText, Prompt, encode_pairs, tokenize_prompt

# The logit rows one decode may return when a backend does not say (LlamaCppBackend's max_outputs).
CHANNEL_MAX_OUTPUTS = 128


@dataclass
class EncodedInputs:
    """Inputs encoded for the model: every window, in order; per input its window count and whether it was cut."""

    windows: list[EncodedText]
    n_chunks: list[int]
    truncated: list[bool]

    def __len__(self) -> int:
        return len(self.n_chunks)

    @property
    def prompt_tokens(self) -> int:
        """Tokens of the inputs' prompts (each window's prompt once, as a server reports usage)."""
        return sum(len(window.prompt) for window in self.windows)

    @staticmethod
    def concat(parts: Sequence[EncodedInputs]) -> EncodedInputs:
        return EncodedInputs([w for p in parts for w in p.windows], [n for p in parts for n in p.n_chunks],
                             [t for p in parts for t in p.truncated])


# A text's best-first search: given the log-probs read so far (trie node -> token -> log p), the
# next trie node to decode through, or None when done.
Chooser = Callable[[dict[tuple[int, ...], dict[int, float]]], "tuple[int, ...] | None"]


class Scorer:
    """Scores inputs for one config on one backend. Threads may share it (model calls are serialized)."""

    def __init__(self, config: Config, backend: Backend, *, lock: threading.Lock | None = None) -> None:
        """``lock``: shared with the other scorers of the same backend (a rerank's), which it serializes too."""
        self.config = config
        self.backend = backend
        self.slots = make_slots(config)
        model = backend.identity().name or "the model"
        self.prompter = Prompter(config, backend.chat_template() if config.chat else None, model=model)
        self._specials: dict[str, Mapping[str, int]] = {}
        field = self.prompter.fields[0]
        self._fitter = self._make_fitter(lambda text: self.encode({field: text}))
        # The part of every prompt before the input (channel: before the label): the backend may
        # decode it once and keep it.
        self.prefix = tuple(tokenize_prompt(backend.tokenize, self.prompter.frames[0].prefix(), True, self.specials))
        self._lock = lock or threading.Lock()

    @property
    def lock(self) -> threading.Lock:
        """Held around every model call of this scorer."""
        return self._lock

    def _make_fitter(self, encode: Callable[[str], EncodedText], field: str | None = None) -> Fitter:
        if not self.config.scoring.channel:
            return Fitter(encode, self.backend.n_ctx)
        # Channel scoring reads a logit row for every token of the input, after each label: a
        # decode returns at most ``max_outputs`` rows, so the input is cut to fit them too (not a
        # field before {label}: it is context, in the prompt).
        rows = getattr(self.backend, "max_outputs", CHANNEL_MAX_OUTPUTS)
        assert isinstance(self.config.prompt, str)
        return Fitter(encode, self.backend.n_ctx, max_candidate=rows - 1,
                      text_in_candidate=field not in context_fields(self.config.prompt))

    def specials(self, text: str) -> Mapping[str, int]:
        """The special tokens in a piece of template text (asked of the backend once per piece)."""
        found = self._specials.get(text)
        if found is None:
            found = self._specials[text] = self.backend.special_tokens(text)
        return found

    def template_specials(self) -> list[str]:
        """Every special token the templates hold (part of what reference-score caches key on)."""
        return sorted({token for frame in self.prompter.frames for text in frame.template_text()
                       for token in self.specials(text)})

    def pairs(self, values: Mapping[str, str]) -> list[tuple[Prompt, str | Prompt]]:
        """The (prompt, completion) pairs scored for an input's field values, one per candidate slot.

        Channel scoring: per slot, the prompt up to the input with ``{label}`` set to the slot's
        verbalization, and the input (its fields and the template text between them) as the completion.
        """
        frames = self.prompter.frames
        if self.config.scoring.channel:
            return [frames[0].split({**values, "label": verbalization(slot.completion)}, self.prompter.fields)
                    for slot in self.slots]
        if len(frames) == 1:
            prompt = frames[0].fill(values)
            return [(prompt, slot.completion) for slot in self.slots]
        prompts = [frame.fill(values) for frame in frames]
        return [(prompts[slot.label], slot.completion) for slot in self.slots]

    def prompts(self, value: Input) -> list[tuple[str, str]]:
        """The (prompt, completion) pairs scored for ``value``, as text."""
        return [(str(prompt), str(completion)) for prompt, completion in self.pairs(self.prompter.values(value))]

    def display_pairs(self) -> list[tuple[str, str]]:
        """The prompts with their fields shown as ``{name}``, and the completions."""
        frames = self.prompter.frames
        if self.config.scoring.channel:
            shown = {name: "{" + name + "}" for name in self.prompter.fields}
            return [(str(prompt), str(completion)) for prompt, completion in self.pairs(shown)]
        return [(frames[slot.label if len(frames) > 1 else 0].display(), slot.completion) for slot in self.slots]

    def encode(self, values: Mapping[str, str]) -> EncodedText:
        """An input's candidates, tokenized jointly with its prompt."""
        return encode_pairs(self.backend.tokenize, self.pairs(values), self.specials)

    def encode_windows(self, value: Input) -> tuple[list[EncodedText], bool]:
        """An input's candidates as one encoding that fits the context, or several (see runtime.long_inputs).

        Only one field is ever shortened: ``runtime.shorten_field``, else the longest. Returns the
        encodings and whether the input was truncated.
        """
        values = self.prompter.values(value)
        field = self.prompter.field_to_shorten(values)
        text = values[field]
        fitter = self._fitter if len(values) == 1 else self._make_fitter(
            lambda piece: self.encode({**values, field: piece}), field)
        n_ctx = self.backend.n_ctx
        # A text of many more tokens than n_ctx: skip encoding it whole (once per candidate).
        if len(text) <= n_ctx or len(self.backend.tokenize(text, False)) <= n_ctx:
            encoded = self.encode(values)
            if fitter.fits(encoded):
                return [encoded], False
        if self.config.runtime.long_inputs == "chunk":
            return [encoded for encoded, _ in fitter.windows(text)], False
        return [fitter.truncate(text, self.config.runtime.truncate_side)[0]], True

    def raw_scores(self, texts: Sequence[Input], *, reference: bool = False,
                   choose: Callable[[EncodedText], Chooser] | None = None) -> RawScores:
        """Summed log-probs of every candidate for every input: one model pass.

        A text scored in several windows (``long_inputs: chunk``) gets, per candidate, the mean
        of its windows' log-probs; calibration and the decision then work on it as on any text.
        ``choose``: a best-first search (:mod:`lpclassify.top_k`) where the backend has one and
        every text is one window; each text's chooser comes from ``choose(its encoding)``, and
        completions it never finished score NaN. Otherwise ``choose`` is never called.
        """
        return self.score_encoded(self.encode_inputs(texts), reference=reference, choose=choose)

    def encode_inputs(self, texts: Sequence[Input]) -> EncodedInputs:
        """Every input's encoding(s), ready for :meth:`score_encoded` (the server batches these)."""
        windows: list[EncodedText] = []
        n_chunks: list[int] = []
        truncated: list[bool] = []
        for text in texts:
            encoded, cut = self.encode_windows(text)
            windows.extend(encoded)
            n_chunks.append(len(encoded))
            truncated.append(cut)
        return EncodedInputs(windows, n_chunks, truncated)

    def score_encoded(self, encoded: EncodedInputs, *, reference: bool = False,
                      choose: Callable[[EncodedText], Chooser] | None = None) -> RawScores:
        """:meth:`raw_scores` of inputs already encoded: the model pass and the sums per completion."""
        windows, n_chunks, truncated = encoded.windows, encoded.n_chunks, encoded.truncated
        with self._lock:
            search = getattr(self.backend, "search", None)
            if reference:
                token_logprobs = self.backend.score_reference(windows)
            elif choose is not None and search is not None and len(windows) == len(encoded):
                token_logprobs = search(windows, [choose(window) for window in windows], prefix=self.prefix)
            else:
                token_logprobs = self.backend.score(windows, prefix=self.prefix)
        rows: list[tuple[CompletionScore, ...]] = []
        start = 0
        for count in n_chunks:
            per_window = [tuple(completion_score(slot.name, candidate, values) for slot, candidate, values
                                in zip(self.slots, windows[w].candidates, token_logprobs[w], strict=True))
                          for w in range(start, start + count)]
            start += count
            rows.append(per_window[0] if count == 1 else tuple(mean_score(s) for s in zip(*per_window, strict=True)))
        width = len(self.slots)
        logprobs = np.array([[s.logprob for s in row] for row in rows], dtype=np.float64).reshape(len(rows), width)
        n_tokens = np.array([[s.n_tokens for s in row] for row in rows], dtype=np.int64).reshape(len(rows), width)
        return RawScores(logprobs, n_tokens, np.array(completion_chars(self.slots)), np.array(truncated, dtype=bool),
                         rows, np.array(n_chunks, dtype=np.int64))
