"""A model's vocabulary through llama.cpp: text <-> token ids, and metadata strings."""

from __future__ import annotations

import ctypes
from typing import Any


class Vocab:
    """Tokenize and detokenize with one loaded model."""

    def __init__(self, lib: Any, model: Any) -> None:
        self._lib = lib
        self._vocab = lib.llama_model_get_vocab(model)
        self.n_tokens: int = lib.llama_vocab_n_tokens(self._vocab)
        self.add_bos = bool(lib.llama_vocab_get_add_bos(self._vocab))
        self.bos: int = lib.llama_vocab_bos(self._vocab)
        self.eos: int = lib.llama_vocab_eos(self._vocab)

    def tokenize(self, text: str, add_bos: bool, special: bool = False) -> list[int]:
        """Token ids; ``special=False``: a text that contains "<bos>" is text, not a control token."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        tokens = (self._lib.llama_token * capacity)()
        n = self._lib.llama_tokenize(self._vocab, data, len(data), tokens, capacity, add_bos, special)
        if n < 0:
            capacity = -n
            tokens = (self._lib.llama_token * capacity)()
            n = self._lib.llama_tokenize(self._vocab, data, len(data), tokens, capacity, add_bos, special)
        return list(tokens[:n])

    def special_tokens(self, text: str) -> dict[str, int]:
        """The control tokens llama.cpp finds in ``text`` when it parses special tokens, by their text."""
        parsed = self.tokenize(text, False, special=True)
        control = self._lib.LLAMA_TOKEN_ATTR_CONTROL | self._lib.LLAMA_TOKEN_ATTR_UNKNOWN
        return {self.token_text(token): token for token in set(parsed)
                if self._lib.llama_vocab_get_attr(self._vocab, token) & control}

    def token_bytes(self, token: int) -> bytes:
        """The raw bytes of one token (a byte-level token may be part of a UTF-8 character)."""
        buffer = ctypes.create_string_buffer(256)
        n = self._lib.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, True)
        return buffer.raw[:max(n, 0)]

    def token_text(self, token: int) -> str:
        return self.token_bytes(token).decode("utf-8", errors="replace")


def chat_template_text(lib: Any, model: Any) -> str | None:
    """The model's default chat template (GGUF ``tokenizer.chat_template``), or None."""
    pointer = lib.llama_model_chat_template(model, None)
    return pointer.decode("utf-8", errors="replace") if pointer else None


def model_metadata(lib: Any, model: Any, key: str) -> str | None:
    """A GGUF metadata value as a string (None if the model has no such key)."""
    buffer = ctypes.create_string_buffer(256)
    n = lib.llama_model_meta_val_str(model, key.encode(), buffer, len(buffer))
    return buffer.value.decode("utf-8", errors="replace") if n >= 0 else None
