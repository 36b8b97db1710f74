"""Packed decodes: many trie branches of many texts in one llama_decode, bit for bit as the oracle.

The wave plan (:mod:`.planner`) decodes one branch of a text per decode, because a branch must
sit in the cells right after its prompt: llama.cpp's CPU softmax sums a row's exponentials in
16-cell blocks (float within a block, double across blocks), so the keys a row sees in the
16-block holding the prompt's last tokens must share that physical block with the row's own
branch, at the same lanes -- and one block has room for one branch only.

Here the first branch of a text still goes right after its prompt (round 0, with the prompt),
and every other branch gets a *region* of its own: cells congruent to its positions (as
everywhere), in a line above the batch's prompts, starting at the first position of the
prompt's last 16-block, ``tail = P - P % 16``. The part of the region before the branch's
first fresh token -- the prompt's tail and the trie nodes the branch shares with earlier
branches -- is not decoded again but *copied*: the K/V cells of that chain are saved
(llama_state_seq_get_data) right after the decode that produced them and restored into the
region (llama_state_seq_set_data), a byte copy of what a decode would give. The prompt's whole
blocks before ``tail`` are shared in place (seq_cp). So every row sees the keys, lanes and
16-blocks the oracle's row sees, and tokens decoded and logit rows stay minimal (a copy is no
decode). A branch waits for the decode of the branch that introduced the deepest node it
shares (for labels of 1-6 tokens: a few rounds); a region is retired right after its decode,
and a saved chain is dropped once its last dependant has been restored.

A decode of several regions reads at most ``shared_outputs`` logit rows. llama.cpp runs the
last layer after attention on the logit rows only (inp_out_ids), and unpinned its K-quant
matmuls give a row one result for 1-7 such rows and another for 8+ (vec_dot below 8 src1
columns, a tiled kernel from 8 on: ggml-cpu/tiled/tiled.cpp), while the oracle reads 1-7 rows
per decode. Without a cap of 7 (and unpinned) 3 of 600 Gemma 3 scores moved (AG News, 150
labels, up to 2.8e-3 nats); dumping the last layer's tensors of one sequence decoded alone with 7 and with 8
logit rows, ``ffn_out`` (ffn_down, Q6_K) is the first to differ. SmolLM2 (Q4_1) never showed it.
With a cap of 7 (``EXACT_OUTPUTS``) every checked score is bit-identical to the oracle on both
models, at a cost in decodes: 150 labels, 4 AG News texts, Gemma 3: 3.0 decodes per text
uncapped, 10.75 capped, 28.5 for the wave plan. The llama.cpp backend now pins the tiled kernel
at every width (``bindings.TILED_AT_EVERY_WIDTH``), and with it shared decodes read up to
``planner.SHARED_OUTPUTS`` (16) rows, still bit-identical to the oracle (tests/test_many_labels.py);
16 rather than more for speed (see there). Packing is
the default for exhaustive scoring (LPCLASSIFY_PACK=0: one branch of a text per decode).

Pure Python but for the ``Ops`` it is given, so tests/test_kv_cells.py runs it against a
simulation of llama.cpp's cell search.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...tokenization import common_prefix_length
from .kv_cells import BUSY, FREE, PINNED, KvCells, Placement, Row
from .planner import (
    EXACT_OUTPUTS,
    MIN_DECODE_TOKENS,
    NodeValues,
    TextPlan,
    attention_span,
    output_cap,
    trie_leaves,
    wave_rows,
)

BLOCK = 16  # ggml's CPU softmax block (AVX-512; 8 on AVX2 divides it)
# Regions go into the cells above the batch's prompts, up to this many more than their span:
# every row of a decode attends over every cell up to the last one used.
REGION_SPAN = 1024


class Ops(Protocol):
    """What a packed run needs from llama.cpp besides decoding."""

    def seq_rm(self, seq: int, p0: int, p1: int) -> None: ...

    def seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None: ...

    def save(self, seq: int) -> Any: ...  # the cells of ``seq`` (positions and K/V), in cell order

    def restore(self, saved: Any, seq: int) -> None: ...  # into the free cells from the search head


@dataclass
class Region:
    """One branch of one text in a packed decode: cells for positions ``tail..`` of its chain."""

    text: int
    leaf: tuple[int, ...]
    kept: tuple[int, ...]  # the nodes it shares with earlier branches: copied, not decoded
    seq: int = -1
    first_cell: int = -1


@dataclass
class TextState:
    plan: TextPlan
    tail: int
    pending: list[tuple[tuple[int, ...], tuple[int, ...]]]  # (leaf, kept) in depth-first order
    dependants: Counter[tuple[int, ...]] = field(default_factory=Counter)
    saved: dict[tuple[int, ...], Any] = field(default_factory=dict)

    @property
    def seq(self) -> int:
        return self.plan.waves[0].seq

    def chain_end(self, node: tuple[int, ...]) -> int:
        """One past the last position of the chain ``tail..`` through ``node``."""
        return len(self.plan.text.prompt) + len(node)

    def ready(self, kept: tuple[int, ...]) -> bool:
        return self.chain_end(kept) == self.tail or kept in self.saved


def text_state(plan: TextPlan) -> TextState:
    prompt = len(plan.text.prompt)
    leaves = trie_leaves(plan.text)
    pending = [(leaf, leaf[:common_prefix_length(leaf, previous)])
               for previous, leaf in itertools.pairwise(leaves)]
    # The pinned prefix is whole blocks and ends before the last prompt token: never past the tail.
    assert plan.reused <= prompt - prompt % BLOCK
    state = TextState(plan, prompt - prompt % BLOCK, pending)
    state.dependants.update(kept for _, kept in pending)
    return state


class Packer:
    """Runs a batch of laid-out texts (:class:`~.planner.TextPlan`, first wave only used) packed."""

    def __init__(self, ops: Ops, cells: KvCells, decode: Any, read: Any, *, free_seqs: Sequence[int],
                 scratch_seq: int, max_outputs: int, n_batch: int, region_span: int = REGION_SPAN,
                 shared_outputs: int = EXACT_OUTPUTS) -> None:
        self.ops, self.cells, self._decode, self._read = ops, cells, decode, read
        self.free_seqs = list(free_seqs)
        self.scratch_seq = scratch_seq
        self.max_outputs, self.n_batch, self.region_span = max_outputs, n_batch, region_span
        self.shared_outputs = shared_outputs  # logit rows of a decode of several regions: the oracle's
        self.end = 0  # one past the highest cell any decode used

    def run(self, plans: Sequence[TextPlan]) -> list[NodeValues]:
        """Decode every trie node of every text once; returns each text's values per read node."""
        values: list[NodeValues] = [{} for _ in plans]
        states = [text_state(plan) for plan in plans]
        for state in states:
            if state.plan.reused:
                self.ops.seq_cp(0, state.seq, 0, state.plan.reused)
        rows, nodes = wave_rows(plans, 0)  # the prompts, each with its first branch
        placement = self._decode_rows(rows)
        self._read_rows(placement, nodes, states, values)
        for state in states:
            self._save_chains(state, state.seq, (), state.plan.waves[0].leaf, from_prompt=True)
        floor = max(plan.end for plan in plans)
        while any(state.pending for state in states):
            regions = self._choose(states, floor)
            self._restore(states, regions)
            rows, nodes = self._region_rows(states, regions)
            placement = self._decode_rows(rows)
            self._read_rows(placement, nodes, states, values)
            for region in regions:
                state = states[region.text]
                self._save_chains(state, region.seq, region.kept, region.leaf, from_prompt=False)
                length = state.chain_end(region.leaf) - state.tail
                self.cells.retire(region.seq, region.first_cell, state.tail, length)
                self.ops.seq_rm(region.seq, -1, -1)
                self.free_seqs.append(region.seq)
        for state in states:
            plan = state.plan
            self.cells.retire(state.seq, plan.start, plan.reused, plan.n_prompt_rows + len(plan.waves[0].leaf))
            self.ops.seq_rm(state.seq, -1, -1)
        return values

    # ------------------------------------------------------------------ decodes

    def _decode_rows(self, rows: list[tuple[Row, int]]) -> Placement:
        placement = self.cells.place(rows, MIN_DECODE_TOKENS)
        self._decode(placement)
        self.end = max(self.end, placement.cells[-1] + 1)
        return placement

    def _read_rows(self, placement: Placement, nodes: Sequence[tuple[int, tuple[int, ...], Row]],
                   states: list[TextState], values: list[NodeValues]) -> None:
        for i, node, row in nodes:
            values[i][node] = self._read(placement.batch_index[row], states[i].plan.reads_at[node])

    def _save_chains(self, state: TextState, seq: int, kept: tuple[int, ...], leaf: tuple[int, ...], *,
                     from_prompt: bool) -> None:
        """Save the chain through every node this decode gave ``seq`` that a later branch shares."""
        first = len(kept) + (0 if from_prompt else 1)
        for depth in range(first, len(leaf) + 1):
            node = leaf[:depth]
            if state.dependants[node] and state.chain_end(node) > state.tail:
                self.ops.seq_cp(seq, self.scratch_seq, state.tail, state.chain_end(node))
                state.saved[node] = self.ops.save(self.scratch_seq)
                self.ops.seq_rm(self.scratch_seq, -1, -1)

    # ------------------------------------------------------------------ regions

    def _choose(self, states: list[TextState], floor: int) -> list[Region]:
        """The next decode's regions: ready branches, texts in turn, depth-first within a text,
        while sequences, logit rows (``output_cap``: as many as the oracle reads), tokens and the
        region span allow."""
        limit = min(self.cells.n_cells, attention_span(floor) + self.region_span)
        taken: set[int] = set()
        regions: list[Region] = []
        outputs = tokens = 0
        cursors = [0] * len(states)
        progress = True
        while progress and self.free_seqs:
            progress = False
            for i, state in enumerate(states):
                while cursors[i] < len(state.pending) and not state.ready(state.pending[cursors[i]][1]):
                    cursors[i] += 1
                if cursors[i] >= len(state.pending) or not self.free_seqs:
                    continue
                leaf, kept = state.pending[cursors[i]]
                reads = sum(1 for d in range(len(kept) + 1, len(leaf) + 1) if leaf[:d] in state.plan.reads_at)
                fresh = len(leaf) - len(kept)
                if (outputs + reads > output_cap(self.max_outputs, self.shared_outputs, len(regions) + 1)
                        or tokens + fresh > self.n_batch - MIN_DECODE_TOKENS):
                    continue
                first = self._find_cells(state, leaf, floor, limit, taken)
                if first is None:
                    if regions:
                        continue
                    raise RuntimeError("no room for a branch region: raise runtime.n_ctx")  # pragma: no cover
                state.pending.pop(cursors[i])
                taken.update(range(first, first + state.chain_end(leaf) - state.tail))
                regions.append(Region(i, leaf, kept, self.free_seqs.pop(0), first))
                outputs, tokens, progress = outputs + reads, tokens + fresh, True
        if not regions:
            raise RuntimeError("packed decoding stalled: no branch is ready")  # pragma: no cover
        return sorted(regions, key=lambda region: region.first_cell)

    def _find_cells(self, state: TextState, leaf: tuple[int, ...], floor: int, limit: int,
                    taken: set[int]) -> int | None:
        """The first cell of the lowest free run for positions ``tail..`` of ``leaf``'s chain."""
        align, owner = self.cells.align, self.cells.owner
        length = state.chain_end(leaf) - state.tail
        first = self.cells.text_start(floor, state.tail)
        while first + length <= limit:
            span = range(first, first + length)
            if not any(owner[c] in (PINNED, BUSY) or c in taken for c in span):
                return first
            first += align
        return None

    def _restore(self, states: list[TextState], regions: list[Region]) -> None:
        """Copy each region's shared chain into its first cells (ascending, so each restore lands
        in the free cells from the search head: exactly its own), then share the prompt's whole
        blocks with it."""
        copies = [(region, states[region.text]) for region in regions]
        targets = {c for region, state in copies
                   for c in range(region.first_cell, region.first_cell + state.chain_end(region.kept) - state.tail)}
        top = max(targets, default=self.cells.base - 1) + 1
        # A restore takes the free cells from llama.cpp's search head on: every free cell up to the
        # last target becomes filler first (padding, once per cell), so that freeing a region's
        # filler lowers the head to exactly its first cell.
        chunk = self.n_batch - MIN_DECODE_TOKENS
        for _ in range(8 + (top - self.cells.base) // chunk):
            holes = [c for c in range(self.cells.base, top) if self.cells.owner[c] == FREE]
            if not holes:
                break
            self._decode(self.cells.pad(holes[:chunk], MIN_DECODE_TOKENS))
        else:
            raise RuntimeError("free KV cells below a branch region could not be filled")  # pragma: no cover
        for region, state in copies:
            count = state.chain_end(region.kept) - state.tail
            if count:
                self.cells.take(range(region.first_cell, region.first_cell + count))
                self.ops.restore(state.saved[region.kept], region.seq)
            state.dependants[region.kept] -= 1
            if not state.dependants[region.kept]:
                state.saved.pop(region.kept, None)
            if state.tail:
                self.ops.seq_cp(state.seq, region.seq, 0, state.tail)

    def _region_rows(self, states: list[TextState],
                     regions: list[Region]) -> tuple[list[tuple[Row, int]], list[tuple[int, tuple[int, ...], Row]]]:
        rows: list[tuple[Row, int]] = []
        nodes: list[tuple[int, tuple[int, ...], Row]] = []
        for region in regions:
            state = states[region.text]
            prompt = len(state.plan.text.prompt)
            for depth in range(len(region.kept), len(region.leaf)):
                node = region.leaf[:depth + 1]
                row = Row(region.leaf[depth], prompt + depth, [region.seq], node in state.plan.reads_at)
                rows.append((row, region.first_cell + prompt + depth - state.tail))
                if row.logits:
                    nodes.append((region.text, node, row))
        return rows, nodes
