"""The llama.cpp backend against independent computations on real GGUF models.

* the oracle (each prompt+completion alone) against llama-cpp-python's high-level ``Llama``
  evaluating the full sequence with logits for every position, log-softmax in float64 here;
* the engine (prefix cache, token trie, cross-text batches) against the oracle;
* a text's scores must not depend on which texts share its batch.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from lpclassify.tokenization import encode_candidates

pytestmark = pytest.mark.model

TEXTS = [
    "An absolute joy from start to finish.",
    "Dull, lifeless and far too long.",
    "I want a refund, the product broke",
    "ok",
    "The plot is thin but the performances are wonderful, and the score lingers for days afterwards.",
    "Nicht schlecht, aber auch nicht gut.",
    "Worst. Film. Ever. 😡",
    "A quiet, patient film that rewards attention.",
]
# Completions that share leading tokens exercise the trie ("not" branches), plus single tokens.
COMPLETIONS = [" positive", " negative", " not good", " not bad", " not bad at all", " très bien", "!"]
# A fixed instruction long enough that whole 16-token blocks of it are pinned and reused.
PREFIX = "Decide whether the movie review below is positive or negative, judging by its tone and wording.\nReview:"
TEMPLATE = PREFIX + " {}\nSentiment:"


class _PrefixTokens(dict):
    """backend -> the tokens of PREFIX (what a classifier passes to every score call)."""

    def __missing__(self, backend):  # type: ignore[no-untyped-def]
        self[backend] = backend.tokenize(PREFIX, True)
        return self[backend]


PREFIX_TOKENS = _PrefixTokens()


def encode_all(backend, texts=TEXTS, completions=COMPLETIONS):  # type: ignore[no-untyped-def]
    backend.score([], prefix=PREFIX_TOKENS[backend])  # pins the instruction, as a classifier's first call does
    return [encode_candidates(backend.tokenize, TEMPLATE.format(t), completions) for t in texts]


def independent_logprobs(model_path, prompt: list[int], continuation: list[int]) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Full evaluation written independently of the library: a fresh llama.cpp context,
    every token of prompt+continuation decoded in one batch with logits at every position,
    log-softmax in float64 here. Same kernel choices as the backend (no repacked weights,
    no flash attention), so the two must agree to rounding."""
    import ctypes

    import llama_cpp

    ctx = _context(str(model_path))
    model = _model(str(model_path))
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)  # nothing left from before
    tokens = prompt + continuation
    batch = llama_cpp.llama_batch_init(len(tokens), 0, 1)
    try:
        for i, token in enumerate(tokens):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, i, 1, True
            batch.seq_id[i][0] = 0
        batch.n_tokens = len(tokens)
        assert llama_cpp.llama_decode(ctx, batch) == 0
        n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
        out = []
        for k, token in enumerate(continuation):
            pointer = llama_cpp.llama_get_logits_ith(ctx, len(prompt) - 1 + k)
            row = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)),
                                        shape=(n_vocab,)).astype(np.float64)
            peak = row.max()
            out.append(row[token] - (peak + np.log(np.exp(row - peak).sum())))
        return np.array(out)
    finally:
        llama_cpp.llama_batch_free(batch)


_contexts: dict[str, object] = {}


def _context(path: str):  # type: ignore[no-untyped-def]
    """One plain context per model for the whole session (cleared before every evaluation)."""
    import llama_cpp

    if path not in _contexts:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = params.n_batch = params.n_ubatch = 512
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.n_threads = params.n_threads_batch = 2
        _contexts[path] = llama_cpp.llama_init_from_model(_model(path), params)
    return _contexts[path]


_models: dict[str, object] = {}


def _model(path: str):  # type: ignore[no-untyped-def]
    import llama_cpp

    if path not in _models:
        params = llama_cpp.llama_model_default_params()
        params.use_extra_bufts = False
        _models[path] = llama_cpp.llama_model_load_from_file(path.encode(), params)
    return _models[path]


def assert_bit_identical(encoded, first, second) -> None:  # type: ignore[no-untyped-def]
    """Every scored token's log-prob equal in both results, bit for bit (np.array_equal, no tolerance)."""
    for text, a, b in zip(encoded, first, second, strict=True):
        for candidate, x, y in zip(text.candidates, a, b, strict=True):
            scored = slice(len(candidate.tokens) - candidate.n_scored, None)
            worst = float(np.abs(x[scored] - y[scored]).max())
            assert np.array_equal(x[scored], y[scored]), f"not bit-identical: they differ by up to {worst:.2e} nats"


def test_oracle_matches_an_independent_full_evaluation(backend) -> None:
    encoded = encode_all(backend, TEXTS[:4])
    oracle = backend.score_reference(encoded)
    worst = 0.0
    for text, per_candidate in zip(encoded, oracle, strict=True):
        for candidate, values in zip(text.candidates, per_candidate, strict=True):
            expected = independent_logprobs(backend.model_path, list(text.prompt), list(candidate.tokens))
            worst = max(worst, float(np.abs(values - expected).max()))
    # another code path (llama-cpp-python's own evaluation): equal to 1e-4 nats, not claimed bit for bit
    assert worst <= 1e-4, f"oracle differs from a full evaluation by {worst:.2e} nats"


def test_engine_matches_the_oracle_on_every_completion(backend) -> None:
    encoded = encode_all(backend)
    fast = backend.score(encoded, prefix=PREFIX_TOKENS[backend])
    oracle = backend.score_reference(encoded)
    assert_bit_identical(encoded, fast, oracle)


def test_engine_matches_an_independent_full_evaluation(backend) -> None:
    encoded = encode_all(backend, TEXTS[:3])
    fast = backend.score(encoded, prefix=PREFIX_TOKENS[backend])
    for text, per_candidate in zip(encoded, fast, strict=True):
        for candidate, values in zip(text.candidates, per_candidate, strict=True):
            expected = independent_logprobs(backend.model_path, list(text.prompt), list(candidate.tokens))
            assert np.abs(values - expected).max() <= 1e-4


def test_a_logit_row_does_not_depend_on_how_many_rows_its_decode_reads(gemma_backend) -> None:
    # llama.cpp runs the last layer on the logit rows only; unpinned, its K-quant matmuls take another
    # kernel from 8 columns on (bindings.TILED_AT_EVERY_WIDTH), and row 31 here moves on Gemma 3.
    # Rows 24-39 are read alone too (a decode each)
    backend = gemma_backend
    prompt = backend.tokenize(TEMPLATE.format(TEXTS[2]), True)
    continuation = backend.tokenize(" " + " ".join(TEXTS[2:] + TEXTS[:2]), False)[:40]
    together = backend._score_alone(prompt, continuation)  # 40 logit rows in one decode
    checked = range(24, 40)
    alone = [backend._score_alone(prompt + continuation[:k], continuation[k:k + 1])[0] for k in checked]
    moved = [k for k, value in zip(checked, alone, strict=True) if together[k] != value]
    assert not moved, f"rows {moved} read among 40 differ from the same rows read alone"


def test_a_texts_scores_do_not_depend_on_its_batch(backend) -> None:
    encoded = encode_all(backend)
    alone = [backend.score([text], prefix=PREFIX_TOKENS[backend])[0] for text in encoded]
    order = list(range(len(encoded)))
    random.Random(7).shuffle(order)
    old = backend.batch_size
    try:
        for batch_size in (3, 8):
            backend.batch_size = batch_size
            shuffled = backend.score([encoded[i] for i in order], prefix=PREFIX_TOKENS[backend])
            for position, i in enumerate(order):
                assert_bit_identical([encoded[i]], [alone[i]], [shuffled[position]])
    finally:
        backend.batch_size = old


def test_engine_decodes_each_token_at_most_once(backend) -> None:
    # several trie branches (" not" -> " not bad" -> " not bad at", " très" -> ...), one per wave
    encoded = encode_all(backend, TEXTS[:4])
    assert any(len({c.tokens[0] for c in text.candidates if len(c.tokens) > 1}) > 1 for text in encoded)
    before = backend.stats.tokens_decoded
    backend.score(encoded, prefix=PREFIX_TOKENS[backend])
    decoded = backend.stats.tokens_decoded - before
    reused = backend.n_pinned
    assert reused >= 16  # the instruction is reused, not re-decoded per text
    # prompt tokens past the pinned prefix + the fed trie nodes
    minimal = 0
    for text in encoded:
        fed = {c.tokens[:d] for c in text.candidates for d in range(1, len(c.tokens))}
        minimal += len(text.prompt) - reused + len(fed)
    assert decoded == minimal


def test_shared_leading_tokens_are_fed_once(backend) -> None:
    encoded = encode_all(backend, TEXTS[:1], [" not bad", " not bad at all", " not good"])
    (text,) = encoded
    fed = {c.tokens[:d] for c in text.candidates for d in range(1, len(c.tokens))}
    naive = sum(len(c.tokens) - 1 for c in text.candidates)
    assert len(fed) < naive  # the " not" (and " not bad") prefixes are shared
    before = backend.stats.tokens_decoded
    backend.score(encoded, prefix=PREFIX_TOKENS[backend])
    assert backend.stats.tokens_decoded - before == len(text.prompt) - backend.n_pinned + len(fed)


def test_branches_of_different_lengths_match_the_oracle(backend) -> None:
    # branch 2 is longer than branch 1 and branch 3 shares two tokens with branch 2: each wave
    # must land in the cells a lone evaluation uses, and reuse what the earlier waves decoded
    completions = [" a b", " x y z w v", " x y q r", " m n o", " positive"]
    encoded = encode_all(backend, TEXTS[:5], completions)
    assert max(len({c.tokens[:1] for c in t.candidates if len(c.tokens) > 1}) for t in encoded) >= 3
    fast = backend.score(encoded, prefix=PREFIX_TOKENS[backend])
    oracle = backend.score_reference(encoded)
    assert_bit_identical(encoded, fast, oracle)


def test_a_pinned_prefix_longer_than_the_sliding_window(backend) -> None:
    # Gemma 3 attends over 512 tokens in most layers; its cache must still keep every cell
    from lpclassify.backends.llama_cpp import LlamaCppBackend

    shots = " ".join(f"Review {i}: the film was {'great' if i % 2 else 'awful'}. Sentiment: "
                     f"{'positive' if i % 2 else 'negative'}." for i in range(40))
    prefix = "Label each review.\n" + shots + "\nReview:"
    long_backend = LlamaCppBackend(backend.model_path, n_ctx=1024, batch_size=3, threads=backend.threads)
    try:
        long_backend.score([], prefix=long_backend.tokenize(prefix, True))
        assert long_backend.n_pinned > 512
        encoded = [encode_candidates(long_backend.tokenize, f"{prefix} {t}\nSentiment:",
                                     [" positive", " negative", " so so"]) for t in TEXTS[:3]]
        fast = long_backend.score(encoded, prefix=long_backend.tokenize(prefix, True))
        oracle = long_backend.score_reference(encoded)
    finally:
        long_backend.close()
    assert_bit_identical(encoded, fast, oracle)


def test_engine_stays_exact_across_many_batches_and_oracle_calls(backend) -> None:
    # the filler kept between batches (and the cells the oracle leaves free) must never shift a row
    encoded = encode_all(backend)
    expected = backend.score_reference(encoded)
    order = list(range(len(encoded))) * 3
    random.Random(3).shuffle(order)
    old = backend.batch_size
    try:
        for step, batch_size in enumerate((1, 5, 2, 8, 3)):
            backend.batch_size = batch_size
            chosen = order[step * 4: step * 4 + 4 + batch_size]
            got = backend.score([encoded[i] for i in chosen], prefix=PREFIX_TOKENS[backend])
            assert_bit_identical([encoded[i] for i in chosen], [expected[i] for i in chosen], got)
            backend.score_reference(encoded[:1])
    finally:
        backend.batch_size = old


def test_a_model_that_cannot_roll_back_is_scored_by_the_reference_path(backend, monkeypatch) -> None:
    # recurrent/hybrid models keep no per-token cells to remove: no pinning, no shared cells
    encoded = encode_all(backend, TEXTS[:2], [" positive", " not bad"])
    expected = backend.score_reference(encoded)
    monkeypatch.setattr(backend, "can_roll_back", False)
    pinned = backend.n_pinned
    backend.score([], prefix=backend.tokenize("Something else entirely, long enough to pin a block.", True))
    assert backend.n_pinned == pinned  # left alone
    before = backend.stats.tokens_decoded
    got = backend.score(encoded, prefix=PREFIX_TOKENS[backend])
    naive = sum(len(t.prompt) + len(c.tokens) - 1 for t in encoded for c in t.candidates)
    assert backend.stats.tokens_decoded - before == naive  # every candidate on its own
    for a, b in zip(expected, got, strict=True):
        for x, y in zip(a, b, strict=True):
            assert np.array_equal(x, y)


def test_multi_label_questions_are_exact_and_read_only_scored_tokens(backend) -> None:
    # multi-label mode: one question per label after the shared text; each question is a trie
    # branch of its own, decoded in its own wave, and only the answer tokens are read
    from lpclassify.tokenization import encode_pairs

    questions = [" Is it about money?", " Is it about a film?", " Is something broken?"]
    ticket = backend.tokenize("Ticket:", True)
    encoded = [encode_pairs(backend.tokenize, [(f"Ticket: {t}\nQuestion:{q}\nAnswer:", a)
                                               for q in questions for a in (" yes", " no")]) for t in TEXTS[:3]]
    assert all(c.n_scored < len(c.tokens) for t in encoded for c in t.candidates)
    before = backend.stats.logit_rows
    fast = backend.score(encoded, prefix=ticket)
    assert backend.stats.logit_rows - before == len(encoded) * len(questions)  # one row per question
    oracle = backend.score_reference(encoded)
    assert_bit_identical(encoded, fast, oracle)
    for text, fast_text in zip(encoded, fast, strict=True):
        for candidate, f in zip(text.candidates, fast_text, strict=True):
            assert np.isnan(f[: len(candidate.tokens) - candidate.n_scored]).all()  # the question's tokens: never read


def test_a_completion_longer_than_the_logit_rows_is_refused_not_a_crash(backend) -> None:
    # llama.cpp aborts the whole process past n_outputs_max: both paths must refuse first
    long_completion = " yes" * (backend.max_outputs + 4)
    encoded = encode_all(backend, TEXTS[:1], [" positive", long_completion])
    from lpclassify.errors import CapacityError

    with pytest.raises(CapacityError, match="logit rows"):
        backend.score_reference(encoded)
    with pytest.raises(CapacityError, match="logit rows"):
        backend.score(encoded, prefix=PREFIX_TOKENS[backend])
    still = backend.score(encode_all(backend, TEXTS[:1], [" positive"]), prefix=PREFIX_TOKENS[backend])
    assert still  # still usable afterwards


def test_after_an_error_mid_batch_the_engine_starts_clean_and_stays_exact(backend, monkeypatch) -> None:
    encoded = encode_all(backend, TEXTS[:4])
    expected = backend.score_reference(encoded)
    pinned = backend.n_pinned
    assert pinned > 0

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("simulated llama.cpp failure")

    monkeypatch.setattr(backend._decoder, "decode", broken)
    with pytest.raises(RuntimeError, match="simulated"):
        backend.score(encoded, prefix=PREFIX_TOKENS[backend])
    monkeypatch.undo()
    got = backend.score(encoded, prefix=PREFIX_TOKENS[backend])  # the cells are cleared and the prefix decoded again
    assert backend.n_pinned == pinned
    assert_bit_identical(encoded, expected, got)
