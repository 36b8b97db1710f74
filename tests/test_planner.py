"""The engine's planner on its own (no model): the trie it feeds, the rows it reads, the waves, the limits."""

from __future__ import annotations

from lpclassify.backends.llama_cpp.planner import (
    TEXT_SEQS,
    Limits,
    attention_span,
    candidate_values,
    fits,
    plan_text,
    wave_rows,
)
from lpclassify.tokenization import Candidate, EncodedText

PROMPT = (1, 2, 3, 4)


def text(*completions: tuple[int, ...], n_scored: int | None = None) -> EncodedText:
    return EncodedText(PROMPT, tuple(Candidate(str(c), c, n_scored or len(c)) for c in completions))


def test_single_token_labels_cost_no_fed_token_and_share_one_read_row() -> None:
    plan = plan_text(text(*[(100 + k,) for k in range(1000)]), reused=0, start=0, first_seq=1)
    assert plan.leaves == [] and plan.n_waves == 1 and plan.seqs == [1]
    assert plan.n_outputs == 1 and plan.reads_at[()] == {100 + k for k in range(1000)}
    rows, nodes = wave_rows([plan], 0)
    assert [row.token for row, _ in rows] == list(PROMPT) and [node for _, node, _ in nodes] == [()]
    assert [row.logits for row, _ in rows] == [False, False, False, True]


def test_shared_leading_tokens_are_fed_once_over_the_waves() -> None:
    plan = plan_text(text((7, 8, 9), (7, 8, 5, 6), (7, 2), (3, 1, 2)), reused=2, start=64, first_seq=3)
    # every proper prefix of a candidate is fed; the deepest ones are the branches, one wave each
    assert plan.leaves == [(3, 1), (7, 8, 5)]
    assert plan.seqs == [3, 4] and plan.n_waves == 2 and plan.n_prompt_rows == 2
    fed = []
    for wave in range(plan.n_waves):
        rows, nodes = wave_rows([plan], wave)
        assert {id(row) for row, _ in rows if row.logits} == {id(row) for _, _, row in nodes}
        fed += [row.token for row, _ in rows[(len(PROMPT) - 2 if wave == 0 else 0):]]
    assert fed == [3, 1, 7, 8, 5]  # nodes (3,) (3,1) (7,) (7,8) (7,8,5): each once
    # one read row per distinct prefix whose next token is scored
    assert set(plan.reads_at) == {(), (3,), (3, 1), (7,), (7, 8), (7, 8, 5)}


def test_unscored_leading_tokens_are_fed_but_not_read() -> None:
    # multi-label: a question's own tokens lead its answers; only the answer is read
    plan = plan_text(text((50, 51, 60), (50, 51, 61), (52, 60), n_scored=1), reused=0, start=0, first_seq=1)
    assert set(plan.reads_at) == {(50, 51), (52,)}
    nan_first = candidate_values(plan.text.candidates[0], {(50, 51): {60: -0.5}})
    assert nan_first[-1] == -0.5 and all(value != value for value in nan_first[:-1])


def test_fits_respects_every_limit() -> None:
    limits = Limits(batch_size=2, max_outputs=8, n_batch=512)
    a = plan_text(text((1,), (2,)), reused=0, start=0, first_seq=1)
    b = plan_text(text((1,), (2,)), reused=0, start=64, first_seq=2)
    c = plan_text(text((1,), (2,)), reused=0, start=128, first_seq=3)
    assert fits([a, b], 0, limits) and not fits([a, b, c], 0, limits)  # batch size
    many = plan_text(text(*[(9, k, 0) for k in range(20)]), reused=0, start=0, first_seq=1)  # (), (9,), 20 x (9, k)
    assert many.n_outputs == 22 and not fits([many], 0, limits)  # logit rows
    far = plan_text(text((1,), (2,)), reused=0, start=300, first_seq=2)
    assert attention_span(far.end) > attention_span(a.end) and not fits([a, far], 0, Limits(8, 128, 4096))
    wide = plan_text(text(*[(k, 1) for k in range(len(TEXT_SEQS) + 1)]), reused=0, start=0, first_seq=1)
    assert not fits([wide], 0, Limits(8, 1024, 4096))  # more branches than sequence ids
