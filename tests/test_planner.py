"""The engine's planner on its own (no model): the trie it feeds, the rows it reads, the waves, the limits."""

from __future__ import annotations

from lpclassify.backends.llama_cpp.planner import (
    EXACT_OUTPUTS,
    Limits,
    add_wave,
    attention_span,
    candidate_values,
    fits,
    plan_open,
    plan_text,
    wave_copies,
    wave_rows,
)
from lpclassify.tokenization import Candidate, EncodedText

PROMPT = (1, 2, 3, 4)


def text(*completions: tuple[int, ...], n_scored: int | None = None) -> EncodedText:
    return EncodedText(PROMPT, tuple(Candidate(str(c), c, n_scored or len(c)) for c in completions))


def test_single_token_labels_cost_no_fed_token_and_share_one_read_row() -> None:
    plan = plan_text(text(*[(100 + k,) for k in range(1000)]), reused=0, start=0, first_seq=1)
    assert [wave.leaf for wave in plan.waves] == [()] and plan.seqs == [1]
    assert plan.n_outputs == 1 and plan.reads_at[()] == {100 + k for k in range(1000)}
    rows, nodes = wave_rows([plan], 0)
    assert [row.token for row, _ in rows] == list(PROMPT) and [node for _, node, _ in nodes] == [()]
    assert [row.logits for row, _ in rows] == [False, False, False, True]


def test_branches_go_in_waves_keeping_what_the_next_one_shares() -> None:
    plan = plan_text(text((7, 8, 9), (7, 8, 5, 6), (7, 2), (3, 1, 2)), reused=2, start=64, first_seq=3)
    # every proper prefix of a candidate is fed; the deepest ones are the branches, one per wave
    assert [wave.leaf for wave in plan.waves] == [(3, 1), (7, 8, 5)]
    assert [wave.kept for wave in plan.waves] == [(), ()] and [wave.seq for wave in plan.waves] == [3, 4]
    first, _ = wave_rows([plan], 0)
    second, _ = wave_rows([plan], 1)
    # the prompt's two rows, then each branch in the cells right after the prompt
    assert [(row.token, cell) for row, cell in first] == [(3, 64), (4, 65), (3, 66), (1, 67)]
    assert [(row.token, cell) for row, cell in second] == [(7, 66), (8, 67), (5, 68)]
    assert set(plan.reads_at) == {(), (3,), (3, 1), (7,), (7, 8), (7, 8, 5)}
    assert wave_copies(plan, 1) == ([(3, 4, 4)], 3)  # the prompt (positions < 4) onto sequence 4


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
    far = plan_text(text((1,), (2,)), reused=0, start=300, first_seq=2)
    assert attention_span(far.end) > attention_span(a.end) and not fits([a, far], 0, Limits(8, 128, 4096))
    long = plan_text(text(tuple(range(1, 40))), reused=0, start=0, first_seq=1)
    assert long.n_outputs == 39 and not fits([long], 0, Limits(8, 16, 4096))  # one branch's logit rows
    assert fits([long], 0, Limits(8, 64, 4096))  # alone, a text may read up to max_outputs rows
    # together, texts read no more rows per decode than the oracle does (EXACT_OUTPUTS)
    four = plan_text(text((1, 2, 3), (1, 2, 4), (5,)), reused=0, start=64, first_seq=2)
    assert four.n_outputs == 3 and EXACT_OUTPUTS == 7
    assert fits([a, four], 0, Limits(8, 128, 4096)) and not fits([four, four, four], 0, Limits(8, 128, 4096))
    # the rows a decode reads add up wave by wave: these two texts peak in different decodes
    early = plan_text(text((1, 2, 3, 4), (5, 6)), reused=0, start=0, first_seq=1)
    late = plan_text(text((1, 2), (5, 6, 7, 8, 9)), reused=0, start=64, first_seq=3)
    assert [w.n_outputs for w in early.waves] == [4, 1] and [w.n_outputs for w in late.waves] == [2, 4]
    assert fits([early, late], 0, Limits(8, 128, 4096)) and not fits([early, early], 0, Limits(8, 128, 4096))


def test_any_number_of_branches_takes_two_sequence_ids_and_each_node_once() -> None:
    # 60 two-level branches under 3 first tokens: more branches than a decode has sequence ids
    completions = [(first, k, end) for first in (5, 6, 7) for k in range(20) for end in (0, 1, 2)]
    plan = plan_text(text(*completions), reused=0, start=0, first_seq=1)
    assert plan.n_waves == 60 and plan.seqs == [1, 2]
    n_fed = 0
    read: list[tuple[int, ...]] = []
    for index, wave in enumerate(plan.waves):
        rows, nodes = wave_rows([plan], index)
        n_fed += len(rows) - (len(PROMPT) if index == 0 else 0)
        read += [node for _, node, _ in nodes]
        if index:
            assert wave.kept == wave.leaf[: len(wave.kept)] == plan.waves[index - 1].leaf[: len(wave.kept)]
    assert n_fed == len({c[:d] for c in completions for d in range(1, len(c))})  # every fed node once
    assert sorted(read) == sorted({c[:d] for c in completions for d in range(len(c))})  # every read prefix once
    many = [plan_text(text(*completions), reused=0, start=64 * k, first_seq=1 + 2 * k) for k in range(4)]
    limits = Limits(batch_size=8, max_outputs=128, n_batch=4096)
    assert many[0].n_outputs == 3  # the prompt's last row, then (5,) and (5, 0)
    # texts of 60 waves share decodes, up to the oracle's logit rows per decode
    assert fits(many[:2], 0, limits) and not fits(many[:3], 0, limits)


def test_a_searched_text_reserves_room_for_any_branch_and_reads_each_node_once() -> None:
    plan = plan_open(text((7, 8, 9), (7, 8, 5, 6), (7, 2), (3, 1, 2)), reused=2, start=64, first_seq=3)
    # before the search, the prompt alone; cells, sequences and rows are reserved for the longest branch
    assert [wave.leaf for wave in plan.waves] == [()] and plan.seqs == [3, 4]
    assert plan.end == 64 + 2 + 3 and plan.n_outputs == 3  # a wave reads the prompt's row, or a branch's nodes
    values = {(): {7: -1.0, 3: -2.0}}
    add_wave(plan, (7, 8, 5), values)  # the chooser's pick after the prompt's row
    add_wave(plan, (7, 8), {**values, (7,): {}, (7, 8): {}, (7, 8, 5): {}})  # all read: keeps, reads nothing
    add_wave(plan, (3, 1), values)
    assert [(w.kept, w.seq, w.reads) for w in plan.waves[1:]] == [
        ((), 4, frozenset({(7,), (7, 8), (7, 8, 5)})), ((7, 8), 3, frozenset()), ((), 4, frozenset({(3,), (3, 1)}))]
    rows, nodes = wave_rows([plan], 1)
    assert [(row.token, cell) for row, cell in rows] == [(7, 66), (8, 67), (5, 68)]  # right after the prompt
    assert [node for _, node, _ in nodes] == [(7,), (7, 8), (7, 8, 5)]
    assert wave_copies(plan, 2) == ([(4, 3, 6)], 4)  # the prompt and the kept (7, 8) onto sequence 3
    partial = candidate_values(plan.text.candidates[2], {(): {7: -1.0}}, partial=True)
    assert partial[0] == -1.0 and partial[1] != partial[1]  # a token never read is NaN
