"""The KV cell planner against a simulation of llama.cpp's own cell search.

``SimulatedCache`` re-implements what llama-kv-cache.cpp does with cells (slot search from the
head, the head moves, seq_rm/seq_cp, the batch position checks and the sliding-window reuse
rule), so the planner's promise can be checked without a model: every row lands in the cell
it was planned for, in a full-attention cache and a sliding-window cache alike.
"""

from __future__ import annotations

import random

import pytest

from lpclassify.backends.llama_cpp.kv_cells import FREE, KvCells, Row
from lpclassify.backends.llama_cpp.planner import (
    Limits,
    attention_span,
    fits,
    plan_text,
    retire_wave,
    wave_copies,
    wave_rows,
)
from lpclassify.tokenization import Candidate, EncodedText

ALIGN = 64


class SimulatedCache:
    def __init__(self, n_cells: int, n_swa: int = 0) -> None:
        self.pos = [-1] * n_cells
        self.seqs: list[set[int]] = [set() for _ in range(n_cells)]
        self.head = 0
        self.n_swa = n_swa

    def _free(self, i: int) -> bool:
        return not self.seqs[i]

    def _lower_head(self, freed: list[int]) -> None:
        if freed and freed[0] < self.head:
            self.head = freed[0]

    def seq_rm(self, seq: int, p0: int, p1: int) -> None:
        p0, p1 = max(p0, 0), (p1 if p1 >= 0 else 2**31)
        freed = []
        for i, seqs in enumerate(self.seqs):
            if seq in seqs and p0 <= self.pos[i] < p1:
                seqs.discard(seq)
                if not seqs:
                    self.pos[i] = -1
                    freed.append(i)
        self._lower_head(freed)

    def seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None:
        for i, seqs in enumerate(self.seqs):
            if src in seqs and p0 <= self.pos[i] < p1:
                seqs.add(dst)

    def seq_pos_max(self, seq: int) -> int:
        return max((self.pos[i] for i, seqs in enumerate(self.seqs) if seq in seqs), default=-1)

    def _can_use(self, i: int) -> bool:
        if self._free(i):
            return True
        if self.n_swa and len(self.seqs[i]) == 1:  # a cell that slid out of its sequence's window
            (seq,) = self.seqs[i]
            return self.seq_pos_max(seq) + 1 - self.pos[i] >= self.n_swa
        return False

    def decode(self, rows: list[Row]) -> list[int]:
        by_seq: dict[int, list[int]] = {}
        for row in rows:
            for seq in row.seqs:
                by_seq.setdefault(seq, []).append(row.pos)
        for seq, positions in by_seq.items():  # llama_batch_allocr's checks
            top = self.seq_pos_max(seq)
            assert top < 0 or min(positions) == top + 1, f"sequence {seq} does not continue at {top + 1}"
            assert max(positions) - min(positions) + 1 == len(positions), f"sequence {seq} has gaps"
        used = sum(not self._free(i) for i in range(len(self.pos)))
        head = 0 if self.head > used + 2 * len(rows) else self.head
        cells, tested = [], 0
        while len(cells) < len(rows):
            assert tested < len(self.pos), "no slot"
            if head >= len(self.pos):
                head = 0
            if self._can_use(head):
                cells.append(head)
            head += 1
            tested += 1
        for row, cell in zip(rows, cells, strict=True):
            self.seqs[cell] = set(row.seqs)
            self.pos[cell] = row.pos
        self.head = cells[-1] + 1
        return cells


class TwoCaches:
    """Gemma 3 keeps a full cache and a sliding-window cache: both get every operation."""

    def __init__(self, n_cells: int, n_swa: int) -> None:
        self.caches = [SimulatedCache(n_cells), SimulatedCache(n_cells, n_swa)]

    def seq_rm(self, seq: int, p0: int, p1: int) -> None:
        for cache in self.caches:
            cache.seq_rm(seq, p0, p1)

    def seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None:
        for cache in self.caches:
            cache.seq_cp(src, dst, p0, p1)

    def decode(self, rows: list[Row]) -> list[int]:
        full, window = (cache.decode(rows) for cache in self.caches)
        assert full == window, "the two caches placed the batch differently"
        return full


def make(n_cells: int = 1024, n_swa: int = 512) -> tuple[KvCells, TwoCaches]:
    memory = TwoCaches(n_cells, n_swa)
    cells = KvCells(memory, n_cells, align=ALIGN, filler_seqs=range(64, 64 + n_cells // ALIGN),
                    scratch_seqs=range(48, 64), padding_token=0, window=n_swa // 2 if n_swa else None)
    return cells, memory


def pin(cells: KvCells, memory: TwoCaches, n: int) -> None:
    rows = [Row(7, pos, [0], False) for pos in range(n)]
    placement = cells.place([(row, pos) for pos, row in enumerate(rows)], 16)
    assert memory.decode(placement.layout) == placement.cells
    cells.retire_padding(placement)
    cells.pin(n)


def run_batch(cells: KvCells, memory: TwoCaches, lengths: list[int], first_pos: int) -> int:
    """Texts of the given row counts, each on its own sequence; returns padding decoded."""
    rows, cursor, texts = [], cells.base, []
    for k, length in enumerate(lengths):
        seq = 1 + k
        start = cells.text_start(cursor, first_pos)
        text_rows = [Row(5, first_pos + i, [seq], i == length - 1) for i in range(length)]
        rows += [(row, start + i) for i, row in enumerate(text_rows)]
        texts.append((seq, start, length))
        cursor = start + length
    placement = cells.place(rows, 16)
    landed = memory.decode(placement.layout)
    assert landed == placement.cells, "a row landed somewhere else than planned"
    for row, planned in rows:
        assert landed[placement.batch_index[row]] == planned and planned % ALIGN == row.pos % ALIGN
    cells.retire_padding(placement)
    for seq, start, length in texts:
        cells.retire(seq, start, first_pos, length)
        memory.seq_rm(seq, -1, -1)
    cells.trim(attention_span(placement.cells[-1] + 1))  # as the backend does after a batch
    return placement.n_padding


def used_end(cells: KvCells) -> int:
    """One past the highest occupied cell (what llama.cpp's attention spans)."""
    return max((cell + 1 for cell in range(cells.n_cells) if cells.owner[cell] != FREE), default=0)


def assert_mirror(cells: KvCells, memory: TwoCaches) -> None:
    cache = memory.caches[0]
    for i in range(cells.n_cells):
        assert (cells.owner[i] == FREE) == (not cache.seqs[i]), f"cell {i}: planner and cache disagree"
    fillers: dict[int, list[int]] = {}
    for i, seqs in enumerate(cache.seqs):
        for seq in seqs & set(cells.filler_seqs):
            fillers.setdefault(seq, []).append(cache.pos[i])
    for seq, positions in fillers.items():
        assert len(positions) == len(set(positions)), f"filler sequence {seq} repeats a position"


def test_rows_land_where_planned_and_padding_stops_once_filler_is_in_place() -> None:
    cells, memory = make()
    pin(cells, memory, 48)
    first = run_batch(cells, memory, [29, 31, 22], 48)
    assert first > 0  # the first batch pads its alignment gaps: nothing holds them yet
    assert_mirror(cells, memory)
    again = [run_batch(cells, memory, [27, 30, 25], 48) for _ in range(5)]
    assert again == [0] * 5  # from then on the filler holds the gaps
    assert_mirror(cells, memory)


def test_random_batches_oracle_runs_and_prefix_changes_stay_in_step() -> None:
    rng = random.Random(11)
    cells, memory = make(n_cells=2048)
    pin(cells, memory, 64)
    for _ in range(60):
        choice = rng.random()
        if choice < 0.1:  # an oracle run: a whole prompt from position 0
            run_batch(cells, memory, [rng.randint(70, 200)], 0)
        elif choice < 0.15:  # a text shares less of the prefix: the pin shrinks
            keep = rng.choice([16, 32, 48]) if cells.base > 48 else cells.base
            memory.seq_rm(0, keep, -1)
            cells.unpin_from(keep)
        else:
            lengths = [rng.randint(1, 150) for _ in range(rng.randint(1, 6))]
            run_batch(cells, memory, lengths, cells.base)
        assert_mirror(cells, memory)


def test_filler_above_a_long_batch_is_trimmed_afterwards() -> None:
    cells, memory = make(n_cells=2048, n_swa=0)  # no sliding window: every row may become filler
    pin(cells, memory, 48)
    run_batch(cells, memory, [700], 48)  # one long text: filler up to ~750
    assert used_end(cells) > 512
    run_batch(cells, memory, [30, 30], 48)  # short ones again: attention back to 256 cells
    assert used_end(cells) <= 256
    assert_mirror(cells, memory)


def test_filler_positions_stay_inside_the_sliding_window() -> None:
    cells, memory = make(n_swa=128)  # window 64: long texts' later rows cannot become filler
    pin(cells, memory, 16)
    for _ in range(4):
        run_batch(cells, memory, [100, 20, 90], 16)
        assert_mirror(cells, memory)
    filler_positions = [cells.pos[i] for i in range(cells.n_cells) if cells.owner[i] >= 0]
    assert filler_positions and all(16 <= p < 16 + 64 for p in filler_positions)


def test_bad_plans_are_refused() -> None:
    cells, memory = make()
    pin(cells, memory, 48)
    with pytest.raises(ValueError, match="cannot go to cell"):
        cells.place([(Row(1, 48, [1], True), 50)], 16)
    with pytest.raises(ValueError, match="outside the free region"):
        cells.place([(Row(1, 0, [1], True), 0)], 16)
    cells.place([(Row(1, 48, [1], True), 48)], 16)  # planned, not yet decoded: the cell is taken
    with pytest.raises(ValueError, match="in use"):
        cells.place([(Row(1, 48, [2], True), 48)], 16)
    with pytest.raises(ValueError, match="ascending"):
        cells.place([(Row(1, 49, [1], True), 49), (Row(1, 48, [2], True), 48)], 16)


def run_plans(cells: KvCells, memory: TwoCaches, plans: list) -> int:  # type: ignore[type-arg]
    """Texts' trie waves, issued as the backend issues them; returns padding decoded."""
    padding = 0
    for plan in plans:
        memory.seq_cp(0, plan.waves[0].seq, 0, plan.reused)
    end = 0
    for wave in range(max(plan.n_waves for plan in plans)):
        for plan in plans:
            copies, carry = wave_copies(plan, wave)
            for src, dst, p1 in copies:
                memory.seq_cp(src, dst, 0, p1)
            if carry is not None:
                memory.seq_rm(carry, -1, -1)
        rows, _ = wave_rows(plans, wave)
        placement = cells.place(rows, 16)
        landed = memory.decode(placement.layout)
        assert landed == placement.cells, "a row landed somewhere else than planned"
        padding += placement.n_padding
        cells.retire_padding(placement)
        for plan in plans:
            if (seq := retire_wave(cells, plan, wave)) is not None:
                memory.seq_rm(seq, -1, -1)
        end = max(end, placement.cells[-1] + 1)
    cells.trim(attention_span(end))
    return padding


@pytest.mark.parametrize("n_swa", [512, 0])
def test_many_labels_in_waves_land_where_planned_and_keep_the_cache_in_step(n_swa: int) -> None:
    # tries of many branches, several texts per decode, kept prefixes carried from wave to wave
    rng = random.Random(5)
    cells, memory = make(n_cells=4096, n_swa=n_swa)
    pin(cells, memory, 48)
    # shared_outputs=64: many texts per decode (where rows land; the kernels' cap is not at stake here)
    limits = Limits(batch_size=4, max_outputs=64, n_batch=1600, shared_outputs=64)
    paddings = []
    for _ in range(6):
        plans = []
        for _ in range(rng.randint(1, 12)):
            prompt = tuple(range(1, 48 + rng.randint(5, 40)))
            completions = {tuple(rng.randint(100, 103) for _ in range(rng.randint(1, 4))) for _ in range(60)}
            text = EncodedText(prompt, tuple(Candidate(str(c), c, len(c)) for c in completions))
            first_seq = plans[-1].seqs[-1] + 1 if plans else 1
            cursor = plans[-1].end if plans else cells.base
            plan = plan_text(text, reused=48, start=cells.text_start(cursor, 48), first_seq=first_seq)
            if plans and not fits([*plans, plan], cells.base, limits):
                break
            plans.append(plan)
        assert all(plan.n_waves > 1 for plan in plans)
        paddings.append(run_plans(cells, memory, plans))
        assert_mirror(cells, memory)
        assert all(not cache.seqs[i] or cache.seqs[i] <= ({0} | set(cells.filler_seqs))
                   for cache in memory.caches for i in range(cells.n_cells))  # only prefix and filler left
    assert paddings[-1] <= paddings[0]


class CopyingCaches(TwoCaches):
    """TwoCaches that also remember what each cell holds (token, position) and copy cells the way
    llama_state_seq_get_data / set_data do: saved in cell order, restored into free cells from the head."""

    def __init__(self, n_cells: int, n_swa: int) -> None:
        super().__init__(n_cells, n_swa)
        self.content: list[tuple[int, int] | None] = [None] * n_cells
        self.restored = 0

    def decode(self, rows: list[Row]) -> list[int]:
        cells = super().decode(rows)
        for row, cell in zip(rows, cells, strict=True):
            self.content[cell] = (row.token, row.pos)
        return cells

    def save(self, seq: int) -> list[tuple[int, int]]:
        cache = self.caches[0]
        return [self.content[i] for i in range(len(cache.pos)) if seq in cache.seqs[i]]  # type: ignore[misc]

    def restore(self, saved: list[tuple[int, int]], seq: int) -> None:
        self.seq_rm(seq, -1, -1)
        rows = [Row(token, pos, [seq], False) for token, pos in saved]
        full, window = (cache.decode(rows) for cache in self.caches)  # the same slot search as a decode
        assert full == window, "the two caches restored the cells differently"
        for (token, pos), cell in zip(saved, full, strict=True):
            self.content[cell] = (token, pos)
        self.restored += len(saved)


def check_rows_see_the_oracles_layout(memory: CopyingCaches, rows: list[Row], texts: list[EncodedText]) -> None:
    """Every decoded row sees exactly a prompt and a trie path, one cell per position, cells congruent
    to positions and ascending with them, and its own 16-block's keys in one physical 16-block."""
    cache = memory.caches[0]
    for row in rows:
        if row.seqs[0] not in range(1, 48):
            continue  # padding
        seen = sorted(cell for cell in range(len(cache.pos))
                       if row.seqs[0] in cache.seqs[cell] and cache.pos[cell] <= row.pos)
        positions = [cache.pos[cell] for cell in seen]
        assert positions == list(range(row.pos + 1)), "a row sees other positions than its own chain"
        assert all(cell % ALIGN == pos % ALIGN for cell, pos in zip(seen, positions, strict=True))
        block = [cell // 16 for cell, pos in zip(seen, positions, strict=True) if pos // 16 == row.pos // 16]
        assert len(set(block)) == 1, "a row's own 16-block is split over physical blocks"
        tokens = tuple(memory.content[cell][0] for cell in seen)  # type: ignore[index]
        assert any((t.prompt + c.tokens)[:len(tokens)] == tokens for t in texts for c in t.candidates), \
            "a row sees a chain that is not its prompt and trie path"


@pytest.mark.parametrize("n_swa", [512, 0])
def test_packed_branches_see_exactly_what_the_oracle_sees(n_swa: int) -> None:
    from lpclassify.backends.llama_cpp.packer import Packer

    rng = random.Random(7)
    n_cells = 4096
    memory = CopyingCaches(n_cells, n_swa)
    cells = KvCells(memory, n_cells, align=ALIGN, filler_seqs=range(64, 128), scratch_seqs=range(48, 64),
                    padding_token=0, window=n_swa // 2 if n_swa else None)
    shared = tuple(range(1000, 1048))
    rows = [Row(token, pos, [0], False) for pos, token in enumerate(shared)]
    placement = cells.place([(row, pos) for pos, row in enumerate(rows)], 16)
    assert memory.decode(placement.layout) == placement.cells
    cells.retire_padding(placement)
    cells.pin(48)
    # shared_outputs=64: many branches per decode (where rows land; the kernels' cap is not at stake here)
    limits = Limits(batch_size=4, max_outputs=64, n_batch=1600, shared_outputs=64)
    decodes = []
    for batch in range(6):
        plans, texts = [], []
        for k in range(rng.randint(1, 6)):
            prompt = shared + tuple(2000 + 100 * batch + 10 * k + i for i in range(rng.randint(1, 40)))
            completions = {tuple(rng.randint(100, 104) for _ in range(rng.randint(1, 5))) for _ in range(60)}
            text = EncodedText(prompt, tuple(Candidate(str(c), c, len(c)) for c in completions))
            first_seq = plans[-1].seqs[-1] + 1 if plans else 1
            cursor = plans[-1].end if plans else cells.base
            plan = plan_text(text, reused=48, start=cells.text_start(cursor, 48), first_seq=first_seq)
            if plans and not fits([*plans, plan], cells.base, limits):
                break
            plans.append(plan)
            texts.append(text)
        calls = []

        def decode(placement, texts=texts, calls=calls):  # type: ignore[no-untyped-def]
            landed = memory.decode(placement.layout)
            assert landed == placement.cells, "a row landed somewhere else than planned"
            cells.retire_padding(placement)
            check_rows_see_the_oracles_layout(memory, placement.layout, texts)
            calls.append(placement)

        read = []
        packer = Packer(memory, cells, decode, lambda index, tokens, read=read: read.append(index) or {},
                        free_seqs=[s for s in range(1, 48) if s not in {p.waves[0].seq for p in plans}],
                        scratch_seq=63, max_outputs=64, n_batch=1600, shared_outputs=64)
        values = packer.run(plans)
        cells.trim(attention_span(packer.end))
        fed = sum(len({c.tokens[:d] for c in t.candidates for d in range(1, len(c.tokens))}) + len(t.prompt) - 48
                  for t in texts)
        decoded = sum(len(p.layout) - p.n_padding for p in calls)
        assert decoded == fed, "every trie node and prompt token decoded exactly once"
        assert sum(len(v) for v in values) == sum(len(p.reads_at) for p in plans)
        decodes.append(len(calls))
        assert_mirror(cells, memory)
        assert all(not cache.seqs[i] or cache.seqs[i] <= ({0} | set(cells.filler_seqs))
                   for cache in memory.caches for i in range(cells.n_cells))  # only prefix and filler left
    assert memory.restored > 0
    assert max(decodes) < 12  # a few rounds, not one decode per branch
