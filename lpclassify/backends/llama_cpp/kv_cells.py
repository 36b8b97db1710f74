"""Where every token of a decode lands in llama.cpp's KV cache, decided here, not left to chance.

Exactness (see the llama_cpp module docstring) needs each token in a KV cell congruent to its
position modulo ``align``. llama.cpp does not take cell indices; it puts the tokens of a batch,
in batch order, into the free cells in ascending order (its search head never lies above a free
cell: it is lowered to every cell freed and moved past the last cell filled). So the cells a
batch lands in are chosen by choosing which cells are free.

``KvCells`` mirrors the cells after the pinned prompt prefix. Between decodes every cell there
is kept occupied by a *filler* sequence, one sequence id per line of ``align`` cells; before a
decode exactly the target cells are freed, so the batch needs no padding tokens to reach them.
After the decode the cells its rows used become filler again (``retire``): a range copy onto
the line's filler sequence, then the row's own sequence is dropped. That needs each filler
sequence to hold every position at most once, which alignment gives for free: a cell's position
is congruent to its index, so the cells of one line have distinct positions, and a range of
consecutive positions within a line frees exactly the cells meant. Cells that cannot be filler
(no sequence id left for their line, or a position outside the window below) are simply freed;
if a later batch must skip them, it decodes a throw-away padding token there, which then
becomes filler.

Sliding-window models reuse a cell whose only sequence has moved more than the window past
it, and would then place a batch differently in their two caches. Filler positions are
therefore kept inside ``[window_start, window_start + window)`` with ``window`` half the
model's sliding window (safe for standard, chunked and symmetric windows alike).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

FREE = -1
PINNED = -2  # the pinned prompt prefix
BUSY = -3  # holds a row of a text still being scored


@dataclass(eq=False)  # rows are found in a layout by identity: two equal tokens are still two rows
class Row:
    """One token of a decode batch."""

    token: int
    pos: int
    seqs: list[int]
    logits: bool


class Memory(Protocol):
    """The two llama.cpp memory operations the planner issues (llama_memory_seq_rm / _cp)."""

    def seq_rm(self, seq: int, p0: int, p1: int) -> None: ...

    def seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None: ...


@dataclass
class Placement:
    """A planned decode: the rows in batch order (padding included) and the cell of each."""

    layout: list[Row]
    cells: list[int]
    n_padding: int
    runs: list[PaddingRun]
    batch_index: dict[Row, int] = field(init=False)  # where each row sits in the batch (rows hash by identity)

    def __post_init__(self) -> None:
        self.batch_index = {row: k for k, row in enumerate(self.layout)}


@dataclass
class PaddingRun:
    """Padding rows in adjacent cells, on one scratch sequence, with consecutive positions."""

    seq: int
    first_cell: int
    first_pos: int
    count: int
    retirable: bool  # positions congruent to cells: may become filler


class KvCells:
    """Python mirror of llama.cpp's KV cells; plans placements and keeps the filler in step."""

    def __init__(self, memory: Memory, n_cells: int, *, align: int, filler_seqs: Sequence[int],
                 scratch_seqs: Sequence[int], padding_token: int, window: int | None) -> None:
        self.memory = memory
        self.n_cells = n_cells
        self.align = align
        self.filler_seqs = list(filler_seqs)
        self.scratch_seqs = list(scratch_seqs)
        self.padding_token = padding_token
        self.window = window
        self.owner = [FREE] * n_cells
        self.pos = [0] * n_cells
        self.base = 0  # first cell after the pinned prefix
        self.window_start = 0

    # ------------------------------------------------------------------ state changes

    def reset(self) -> None:
        """The memory was cleared: every cell is free."""
        self.owner = [FREE] * self.n_cells
        self.base = 0
        self.window_start = 0

    def pin(self, n: int) -> None:
        """The first ``n`` cells now hold the pinned prefix (positions 0..n-1)."""
        for cell in range(n):
            self.owner[cell] = PINNED
        self.base = n
        self.window_start = n

    def unpin_from(self, keep: int) -> None:
        """The pinned prefix was cut to ``keep`` cells; the rest are free."""
        for cell in range(keep, self.base):
            self.owner[cell] = FREE
        self.base = keep

    def filler_seq(self, cell: int) -> int | None:
        line = cell // self.align
        return self.filler_seqs[line] if line < len(self.filler_seqs) else None

    def in_window(self, pos: int) -> bool:
        return self.window is None or self.window_start <= pos < self.window_start + self.window

    # ------------------------------------------------------------------ planning

    def text_start(self, cursor: int, first_pos: int) -> int:
        """The first cell at or after ``cursor`` where a row at ``first_pos`` may go."""
        return cursor + (first_pos - cursor) % self.align

    def place(self, rows: Sequence[tuple[Row, int]], min_rows: int) -> Placement:
        """Free the target cells of ``rows`` (given in ascending cell order) and lay the batch out.

        Free cells below a target get a padding row (llama.cpp would otherwise put the next row
        there); a batch shorter than ``min_rows`` is topped up with padding rows in the next
        free or filler cells. Every cell used is BUSY afterwards.
        """
        targets = [cell for _, cell in rows]
        if any(b <= a for a, b in itertools.pairwise(targets)):
            raise ValueError("rows must come in ascending cell order")
        for row, cell in rows:
            if not self.base <= cell < self.n_cells:
                raise ValueError(f"cell {cell} is outside the free region [{self.base}, {self.n_cells})")
            if cell % self.align != row.pos % self.align:
                raise ValueError(f"a row at position {row.pos} cannot go to cell {cell}")
            if self.owner[cell] in (PINNED, BUSY):
                raise ValueError(f"cell {cell} is in use")
        self._free_filler(targets)

        cells: list[int] = []  # every cell the batch fills, ascending: its batch order
        row_at: dict[int, Row] = {}
        cell = self.base
        for row, target in rows:
            cells.extend(c for c in range(cell, target) if self.owner[c] == FREE)
            cells.append(target)
            row_at[target] = row
            cell = target + 1
        return self._lay_out(cells, row_at, cell, min_rows)

    def pad(self, holes: Sequence[int], min_rows: int) -> Placement:
        """A decode of padding only, into the free cells ``holes`` (ascending), topped up to ``min_rows``:
        afterwards they hold filler (:meth:`retire_padding`)."""
        if any(self.owner[c] != FREE for c in holes) or any(b <= a for a, b in itertools.pairwise(holes)):
            raise ValueError("padding goes into free cells, in ascending order")
        return self._lay_out(list(holes), {}, holes[-1] + 1 if holes else self.base, min_rows, by_line=True)

    def take(self, targets: Sequence[int]) -> None:
        """Free ``targets`` of their filler for rows restored rather than decoded; they are in use after."""
        targets = list(targets)
        for c in targets:
            if not self.base <= c < self.n_cells or self.owner[c] in (PINNED, BUSY):
                raise ValueError(f"cell {c} cannot take a restored row")
        self._free_filler(targets)
        for c in targets:
            self.owner[c] = BUSY

    def _lay_out(self, cells: list[int], row_at: dict[int, Row], cell: int, min_rows: int, *,
                 by_line: bool = False) -> Placement:
        """The batch in cell order: ``cells`` (rows of ``row_at``, padding elsewhere), topped up.
        ``by_line``: a padding run per line, so that long runs keep their positions in the window."""
        # Top a short batch up with padding in the next cells that are free or filler: taking filler
        # (freed first) keeps a long run of small decodes from marching through the cache.
        top_up: list[int] = []
        while len(cells) + len(top_up) < min_rows:
            if cell >= self.n_cells:
                raise ValueError("no free KV cells left for padding")
            if self.owner[cell] not in (PINNED, BUSY):
                top_up.append(cell)
            cell += 1
        self._free_filler([c for c in top_up if self.owner[c] != FREE])
        cells.extend(top_up)

        padding_cells = [c for c in cells if c not in row_at]
        runs = self._padding_runs(padding_cells, by_line)
        padding = {run.first_cell + k: Row(self.padding_token, run.first_pos + k, [run.seq], False)
                   for run in runs for k in range(run.count)}
        layout = [row_at[c] if c in row_at else padding[c] for c in cells]
        for used in cells:
            self.owner[used] = BUSY
        return Placement(layout, cells, len(padding_cells), runs)

    def _free_filler(self, targets: Sequence[int]) -> None:
        """Free the target cells that hold filler: one range per run of cells within a line."""
        start = 0
        while start < len(targets):
            end = start + 1
            seq = self.owner[targets[start]]
            while (end < len(targets) and targets[end] == targets[end - 1] + 1 and self.owner[targets[end]] == seq
                   and self.pos[targets[end]] == self.pos[targets[end - 1]] + 1
                   and targets[end] // self.align == targets[start] // self.align):
                end += 1
            if seq >= 0:
                self.memory.seq_rm(seq, self.pos[targets[start]], self.pos[targets[end - 1]] + 1)
                for cell in targets[start:end]:
                    self.owner[cell] = FREE
            start = end

    def _padding_runs(self, padding_cells: Sequence[int], by_line: bool = False) -> list[PaddingRun]:
        """Group padding cells into runs of adjacent cells, one scratch sequence each.

        A run's positions are consecutive (llama.cpp requires it of a sequence) and congruent
        to its cells, so it can become filler afterwards. Runs beyond the scratch sequences
        share the last one, with positions that continue from run to run: throw-away.
        """
        runs: list[PaddingRun] = []
        spare_pos = 0
        start = 0
        while start < len(padding_cells):
            end = start + 1
            while (end < len(padding_cells) and padding_cells[end] == padding_cells[end - 1] + 1
                   and not (by_line and padding_cells[end] % self.align == 0)):
                end += 1
            first, count = padding_cells[start], end - start
            if len(runs) < len(self.scratch_seqs) - 1:
                first_pos = self.window_start + (first - self.window_start) % self.align
                runs.append(PaddingRun(self.scratch_seqs[len(runs)], first, first_pos, count, True))
            else:
                runs.append(PaddingRun(self.scratch_seqs[-1], first, spare_pos, count, False))
                spare_pos += count
            start = end
        return runs

    # ------------------------------------------------------------------ after a decode

    def retire_padding(self, placement: Placement) -> None:
        """Turn the padding rows of a finished decode into filler (or free them)."""
        for run in placement.runs:
            if run.retirable:
                self.retire(run.seq, run.first_cell, run.first_pos, run.count)
            else:
                self.release(run.first_cell, run.count)
        for seq in sorted({run.seq for run in placement.runs}):
            self.memory.seq_rm(seq, -1, -1)

    def retire(self, seq: int, first_cell: int, first_pos: int, count: int) -> None:
        """Rows at cells ``first_cell..`` (positions ``first_pos..``) on ``seq`` are done.

        Each becomes filler where it can; the caller then removes ``seq`` from the memory,
        which frees the others. Cells are copied line by line: one range of positions each.
        """
        cell, end = first_cell, first_cell + count
        while cell < end:
            line_end = min(end, (cell // self.align + 1) * self.align)
            filler = self.filler_seq(cell)
            keep = [] if filler is None else [c for c in range(cell, line_end)
                                              if self.in_window(first_pos + c - first_cell)]
            if filler is not None and keep:
                p0, p1 = first_pos + keep[0] - first_cell, first_pos + keep[-1] - first_cell + 1
                self.memory.seq_cp(seq, filler, p0, p1)
                for c in keep:
                    self.owner[c] = filler
                    self.pos[c] = first_pos + c - first_cell
            self.release(cell, line_end - cell)
            cell = line_end

    def release(self, first_cell: int, count: int) -> None:
        """Cells whose rows are done and did not become filler: free once their sequence goes."""
        for c in range(first_cell, first_cell + count):
            if self.owner[c] == BUSY:
                self.owner[c] = FREE

    def trim(self, limit: int) -> None:
        """Free the filler of the line holding cell ``limit`` and of every line above it.

        llama.cpp's attention spans every cell up to the last one used: filler left far above
        the batches in use would make every decode pay for it.
        """
        for line in range(limit // self.align, min(len(self.filler_seqs), -(-self.n_cells // self.align))):
            first = line * self.align
            cells = range(first, min(first + self.align, self.n_cells))
            if any(self.owner[c] == self.filler_seqs[line] for c in cells):
                self.memory.seq_rm(self.filler_seqs[line], -1, -1)
                for c in cells:
                    if self.owner[c] == self.filler_seqs[line]:
                        self.owner[c] = FREE
