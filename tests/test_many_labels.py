"""Many labels on real models: a trie too big for one decode is fed in waves, exactly and minimally.

The label sets are words of the model's own vocabulary (one to three of them per label), so
their completions are 1-4 tokens long and share leading tokens the way real label sets do.
"""

from __future__ import annotations

import numpy as np
import pytest

from lpclassify.backends.llama_cpp.planner import trie_leaves
from lpclassify.tokenization import encode_candidates, encode_pairs

pytestmark = pytest.mark.model

TEXTS = ["Stocks rallied after the central bank cut rates.", "A late winner settled the derby."]


def vocabulary_labels(backend, n: int) -> list[str]:  # type: ignore[no-untyped-def]
    """n distinct labels from the vocabulary's whole lowercase words: a word, or two or three of them."""
    words = []
    for token in range(backend.n_vocab):
        text = backend.token_text(token)
        if text.startswith(" ") and text[1:].isalpha() and text[1:].islower() and len(text) >= 5:
            words.append(text[1:])
        if len(words) >= 2 * n:
            break
    labels: list[str] = []
    for i, word in enumerate(words):
        label = word if i % 5 < 3 else " ".join(words[i:i + (2 if i % 5 == 3 else 3)])
        if label not in labels:
            labels.append(label)
        if len(labels) == n:
            return labels
    raise AssertionError("the vocabulary has too few words")


def check_engine(backend, encoded, prefix) -> None:  # type: ignore[no-untyped-def]
    """The engine against the oracle (within 1e-4 nats, same best candidate), at the minimal cost."""
    before = backend.stats.as_dict()
    fast = backend.score(encoded, prefix=prefix)
    after = backend.stats.as_dict()
    pinned = backend.n_pinned
    fed = sum(len(t.prompt) - pinned + len({c.tokens[:d] for c in t.candidates for d in range(1, len(c.tokens))})
              for t in encoded)
    read = sum(len({c.tokens[:d] for c in t.candidates for d in range(len(c.tokens) - c.n_scored, len(c.tokens))})
               for t in encoded)
    assert after["tokens_decoded"] - before["tokens_decoded"] == fed  # prompt once, every trie node once
    assert after["logit_rows"] - before["logit_rows"] == read  # one row per distinct read prefix
    oracle = backend.score_reference(encoded)
    for text, fast_text, oracle_text in zip(encoded, fast, oracle, strict=True):
        worst = 0.0
        for candidate, f, o in zip(text.candidates, fast_text, oracle_text, strict=True):
            scored = slice(len(candidate.tokens) - candidate.n_scored, None)
            worst = max(worst, float(np.abs(f[scored] - o[scored]).max()))
        assert worst <= 1e-4, f"engine differs from the oracle by {worst:.2e} nats"
        best = [int(np.argmax([v[len(v) - c.n_scored:].sum() for c, v in zip(text.candidates, values, strict=True)]))
                for values in (fast_text, oracle_text)]
        assert best[0] == best[1]


def test_a_thousand_labels_are_exact_and_minimal(gemma_backend) -> None:
    backend = gemma_backend
    labels = vocabulary_labels(backend, 1000)
    completions = [" " + label for label in labels]
    encoded = [encode_candidates(backend.tokenize, f"Topic of the news: {text}\nTopic:", completions)
               for text in TEXTS]
    assert max(len(c.tokens) for c in encoded[0].candidates) >= 3
    assert len(trie_leaves(encoded[0])) > 46  # more branches than one decode has sequence ids
    check_engine(backend, encoded, backend.tokenize("Topic of the news:", True))


def test_many_multi_label_questions_are_exact_and_minimal(smollm2_backend) -> None:
    # one yes/no question per label: each question is a trie branch of many unscored tokens
    backend = smollm2_backend
    labels = vocabulary_labels(backend, 80)
    encoded = [encode_pairs(backend.tokenize, [(f"Message: {text}\nIs it about {label}? Answer:", answer)
                                               for label in labels for answer in (" yes", " no")])
               for text in TEXTS]
    assert len(trie_leaves(encoded[0])) == 80
    check_engine(backend, encoded, backend.tokenize("Message:", True))


# An AG News text and two-word labels on which packed decodes of 8+ logit rows moved a few scores
# off the oracle on Gemma 3 (" darfur region" by 2.2e-4 nats, " quarterly profit" by 1.2e-3).
AG_NEWS = ("Fears for T N pension after talks Unions representing workers at Turner   Newall say they are "
           "'disappointed' after talks with stricken parent firm Federal Mogul.")
PHRASES = ["darfur region", "quarterly profit", "oil prices", "stock market", "world series", "prime minister",
           "chief executive", "national league", "interest rates", "third quarter", "search engine",
           "grand prix", "nuclear program", "open source", "red sox", "white house", "free agent",
           "wall street", "united nations", "supreme court", "federal reserve", "space station",
           "presidential election", "security council", "trade deficit", "pension fund", "labor union",
           "parent company", "credit card", "profit warning"]


def test_packed_decodes_equal_the_oracle_bit_for_bit(gemma_backend) -> None:
    # exhaustive scoring packs many branches per decode, more logit rows than the oracle reads: ggml's
    # K-quant kernel is pinned at every width (bindings.TILED_AT_EVERY_WIDTH), so the bits still agree
    from lpclassify.backends.llama_cpp.planner import EXACT_OUTPUTS

    backend = gemma_backend
    assert backend._engine.pack
    encoded = [encode_candidates(backend.tokenize, f"News: {AG_NEWS}\nTopic in one or two words:",
                                 [" " + phrase for phrase in PHRASES])]
    rows = []
    decode = backend._decoder.decode

    def counting(placement):  # type: ignore[no-untyped-def]
        rows.append(sum(row.logits for row in placement.layout))
        decode(placement)

    backend._decoder.decode = counting
    try:
        packed = backend.score(encoded, prefix=backend.tokenize("News:", True))
    finally:
        del backend._decoder.decode
    waves = len(trie_leaves(encoded[0]))
    assert max(rows) > EXACT_OUTPUTS and len(rows) < waves / 2  # full decodes, far fewer than one per branch
    oracle = backend.score_reference(encoded)
    for candidate, p, o in zip(encoded[0].candidates, packed[0], oracle[0], strict=True):
        assert np.array_equal(p, o), f"{candidate.completion!r}: packed {p} vs oracle {o}"
