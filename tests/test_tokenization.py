"""Joint tokenization on both real tokenizers: byte-level BPE (SmolLM2) and SentencePiece (Gemma 3)."""

from __future__ import annotations

import pytest

from lpclassify.tokenization import encode_candidates, encode_pairs, split_trailing_whitespace

pytestmark = pytest.mark.model

PROMPT = "Review: An absolute joy from start to finish.\nSentiment:"
TRICKY = [" positive", "positive", " Positive!", ".", " très bien", " 😀", "\nnegative", " not good at all",
          " 100%"]


def test_split_trailing_whitespace() -> None:
    assert split_trailing_whitespace("Answer: \n") == ("Answer:", " \n")
    assert split_trailing_whitespace("Answer:") == ("Answer:", "")


@pytest.mark.parametrize("completion", TRICKY)
def test_prompt_plus_candidate_is_exactly_the_joint_tokenization(backend, completion: str) -> None:
    encoded = encode_candidates(backend.tokenize, PROMPT, [completion])
    (candidate,) = encoded.candidates
    joint = backend.tokenize(PROMPT + completion, True)
    assert list(encoded.prompt) + list(candidate.tokens) == joint
    assert 1 <= candidate.n_scored <= len(candidate.tokens)
    # the scored tail ends with the completion; where the boundary merged (":" + "." -> ":.")
    # the merged token is scored as the completion's first token
    own = b"".join(backend.vocab.token_bytes(t) for t in candidate.tokens[-candidate.n_scored:]).decode()
    assert own.strip().endswith(completion.strip())
    assert len(own.strip()) <= len(completion.strip()) + 1


def test_bos_exactly_once_when_the_model_wants_it(backend) -> None:
    encoded = encode_candidates(backend.tokenize, PROMPT, [" positive"])
    bos = backend.vocab.bos
    if backend.add_bos:  # Gemma: BOS first, and nowhere else
        assert encoded.prompt[0] == bos and list(encoded.prompt).count(bos) == 1
    else:  # SmolLM2: no BOS at all
        assert bos not in encoded.prompt


def test_trailing_prompt_space_moves_onto_the_completion(backend) -> None:
    with_space = encode_candidates(backend.tokenize, "Answer: ", ["yes"])
    without = encode_candidates(backend.tokenize, "Answer:", [" yes"])
    assert with_space.prompt == without.prompt
    assert [c.tokens for c in with_space.candidates] == [c.tokens for c in without.candidates]


def test_boundary_merge_keeps_prompt_tokens_out_of_the_score(backend) -> None:
    # "Sentiment:" + ":)" can merge "::" or ":)" across the boundary on some tokenizers
    encoded = encode_candidates(backend.tokenize, "Mood:", [")", " happy"])
    joint = [backend.tokenize("Mood:" + c, True) for c in (")", " happy")]
    for candidate, full in zip(encoded.candidates, joint, strict=True):
        assert list(encoded.prompt) + list(candidate.tokens) == full
        assert candidate.n_scored <= len(candidate.tokens)


def test_per_candidate_prompts_share_the_common_part(backend) -> None:
    pairs = [("Text: hello\nAbout billing? Answer:", " yes"), ("Text: hello\nAbout bugs? Answer:", " no")]
    encoded = encode_pairs(backend.tokenize, pairs)
    for (prompt, completion), candidate in zip(pairs, encoded.candidates, strict=True):
        assert list(encoded.prompt) + list(candidate.tokens) == backend.tokenize(prompt + completion, True)
        assert "".join(backend.token_text(t) for t in candidate.tokens[-candidate.n_scored:]).strip() == \
            completion.strip()
