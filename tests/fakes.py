"""A fake backend for the pure maths (calibration, evaluation, the CLI's error paths).

Never a stand-in for the model where the model is under test: those tests use real GGUF
models (tests/test_backend.py and the model-marked tests).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lpclassify.backends import ModelIdentity


class CharBackend:
    """One character per token. A completion's log-prob depends on words in the prompt:
    ' positive' gains with "good", ' negative' with "bad", and ' negative' has a constant head
    start that calibration should remove. ``length_penalty`` (nats per 100 prompt characters)
    makes scores depend on the prompt's length too, as a real model's do."""

    n_ctx = 4096

    def __init__(self, model_path: Path | None = None, *, length_penalty: float = 0.0) -> None:
        self.model_path = model_path
        self.length_penalty = length_penalty
        self.texts = 0

    def tokenize(self, text: str, add_bos: bool) -> list[int]:
        return [ord(c) for c in text]

    def token_text(self, token: int) -> str:
        return chr(token)

    def special_tokens(self, text: str) -> dict[str, int]:
        return {}

    def chat_template(self) -> None:
        return None

    def identity(self) -> ModelIdentity:
        return ModelIdentity.of_file(self.model_path)

    def describe(self) -> dict[str, object]:
        return {"path": str(self.model_path), "architecture": "characters"}

    def close(self) -> None:
        pass

    def score(self, texts, *, prefix=()):  # type: ignore[no-untyped-def]
        out = []
        for text in texts:
            prompt = "".join(map(chr, text.prompt))
            row = []
            for candidate in text.candidates:
                completion = "".join(map(chr, candidate.tokens))
                value = -2.0 - self.length_penalty * len(prompt) / 100
                if "neg" in completion:
                    value += 1.0 + (1.5 if "bad" in prompt else 0.0)
                elif "good" in prompt:
                    value += 1.5
                row.append(np.full(len(candidate.tokens), value / len(candidate.tokens)))
            out.append(row)
            self.texts += 1
        return out

    def score_reference(self, texts):  # type: ignore[no-untyped-def]
        return self.score(texts)
