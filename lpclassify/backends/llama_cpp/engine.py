"""The engine's state across calls: the pinned prompt prefix, and texts run through decodes wave by wave.

Every token is decoded at most once per text: the caller's static prompt prefix is decoded once
and kept on sequence 0; each text continues after the longest common token prefix with it.
The texts' tries are fed in waves (:mod:`.planner`), one branch of each text per decode,
several texts per decode. Exhaustive scoring packs them instead (:mod:`.packer`; LPCLASSIFY_PACK=0
turns it off): the prompts with their first branches in one decode, then many branches of several
texts per decode, each in cells of its own beside a byte copy of the chain it continues, up to
``Limits.shared_outputs`` logit rows per decode. What goes into which cell
is :mod:`.kv_cells`'s job; one decode call is :mod:`.decoder`'s.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ...errors import CapacityError
from ...tokenization import EncodedText, common_prefix_length
from ..base import ScoreResult
from .decoder import Decoder
from .kv_cells import KvCells, Placement, Row
from .packer import Ops, Packer
from .planner import (
    MIN_DECODE_TOKENS,
    PREFIX_SEQ,
    SCRATCH_SEQS,
    TEXT_SEQS,
    Chooser,
    Limits,
    NodeValues,
    TextPlan,
    add_wave,
    attention_span,
    candidate_values,
    capacity_message,
    fits,
    plan_open,
    plan_text,
    retire_wave,
    wave_copies,
    wave_rows,
)

# The pinned prefix is kept to whole multiples of this many cells: softmax sums a row in
# blocks of 16 floats, so a prefix block must not mix with a text's own cells.
PIN_BLOCK = 16
# Texts with at most this many trie branches are decoded wave by wave: packing them saves a decode
# or two but fills KV cells around its regions (SmolLM2, 4 AG News labels, 4 texts: 0.64-0.82x
# the wave plan packed above 2 branches, 0.98-1.00x above 4; benchmarks/labels.py --compare-waves).
PACK_ABOVE_WAVES = 4

class Engine:
    """Scores encoded texts on one context, keeping the pinned prefix between calls."""

    def __init__(self, lib: Any, memory: Any, cells: KvCells, decoder: Decoder, *, n_ctx: int,
                 ops: Ops | None = None) -> None:
        self._lib = lib
        self._memory = memory
        # Exhaustive scoring packs many branches into each decode (:mod:`.packer`), bit for bit as
        # the oracle; LPCLASSIFY_PACK=0 falls back to one branch of a text per decode (the wave plan).
        self.ops = ops
        self.pack = ops is not None and os.environ.get("LPCLASSIFY_PACK") != "0"
        self.cells = cells
        self.decoder = decoder
        self._n_ctx = n_ctx
        self.pinned: tuple[int, ...] = ()
        self._pin_wanted: tuple[int, ...] = ()  # the prefix asked for: decoded again after an error
        self._repin = False

    # ------------------------------------------------------------------ memory

    def decode(self, placement: Placement) -> None:
        """Decode one planned batch, then turn its padding into filler."""
        self.decoder.decode(placement)
        self.cells.retire_padding(placement)

    def reset(self) -> None:
        """Forget every cell."""
        self._lib.llama_memory_clear(self._memory, True)
        self.cells.reset()
        self.pinned = ()

    def recover(self) -> None:
        """After an error mid-decode the mirror of the cells cannot be trusted: start clean, and
        decode the pinned prefix again on the next call."""
        self.reset()
        self._repin = True

    def place_sequence(self, rows: list[Row]) -> Placement:
        """Plan rows of one sequence (positions from rows[0].pos) at the first aligned cells."""
        start = self.cells.text_start(self.cells.base, rows[0].pos)
        return self.cells.place([(row, start + k) for k, row in enumerate(rows)], MIN_DECODE_TOKENS)

    def finish_sequence(self, seq: int, rows: list[Row], placement: Placement) -> None:
        start = placement.cells[placement.batch_index[rows[0]]]
        self.cells.retire(seq, start, rows[0].pos, len(rows))
        self._lib.llama_memory_seq_rm(self._memory, seq, -1, -1)

    # ------------------------------------------------------------------ the pinned prefix

    def pinnable(self, prefix: Sequence[int]) -> tuple[int, ...]:
        """The part of ``prefix`` the engine keeps in the cache: whole 16-cell blocks within n_ctx."""
        tokens = tuple(prefix)[: self._n_ctx]
        return tokens[: len(tokens) // PIN_BLOCK * PIN_BLOCK]

    def _pin(self, tokens: tuple[int, ...]) -> None:
        """Decode ``tokens`` once on the prefix sequence; later texts reuse what they share."""
        self._pin_wanted, self._repin = tokens, False
        if tokens == self.pinned:
            return
        self.reset()
        if tokens:
            rows = [Row(token, pos, [PREFIX_SEQ], False) for pos, token in enumerate(tokens)]
            try:
                self.decode(self.cells.place([(row, pos) for pos, row in enumerate(rows)], MIN_DECODE_TOKENS))
            except BaseException:
                self.reset()
                raise
        self.cells.pin(len(tokens))
        self.pinned = tokens

    def _shrink_pin(self, keep: int) -> None:
        """Keep only the first ``keep`` pinned tokens (a text shares fewer: reuse must stay exact)."""
        keep = keep // PIN_BLOCK * PIN_BLOCK
        self._lib.llama_memory_seq_rm(self._memory, PREFIX_SEQ, keep, -1)
        self.cells.unpin_from(keep)
        self.pinned = self.pinned[:keep]

    # ------------------------------------------------------------------ texts

    def _plan(self, text: EncodedText, first_seq: int, cursor: int, open_ended: bool) -> TextPlan:
        """Lay one text out from the first aligned cell at or after ``cursor``."""
        reused = len(self.pinned)
        plan = plan_open if open_ended else plan_text
        return plan(text, reused=reused, start=self.cells.text_start(cursor, reused), first_seq=first_seq)

    def score(self, texts: Sequence[EncodedText], prefix: Sequence[int], limits: Limits,
              choosers: Sequence[Chooser] | None = None) -> ScoreResult:
        """Per-token log-probs of every candidate of every text, each token decoded at most once.

        ``choosers`` (one per text): a best-first search instead of the whole trie. After each
        wave a text's chooser names the next branch to decode (None: done); tokens never read
        come back as NaN.
        """
        wanted = self.pinnable(prefix)
        if self._repin or wanted != self._pin_wanted:
            self._pin(wanted)
        # Reuse must end before each text's last prompt token (its row scores the first tokens).
        shared = min((min(common_prefix_length(t.prompt, self.pinned), len(t.prompt) - 1) for t in texts),
                     default=len(self.pinned))
        if shared < len(self.pinned):
            self._shrink_pin(shared)
        base = self.cells.base
        open_ended = choosers is not None
        results: ScoreResult = []
        plans: list[TextPlan] = []
        for text in texts:
            plan = self._plan(text, plans[-1].seqs[-1] + 1, plans[-1].end, open_ended) if plans else None
            if plan is None or not fits([*plans, plan], base, limits):
                if plans:
                    results.extend(self._run(plans, choosers[len(results):] if choosers else None, limits))
                    plans = []
                plan = self._plan(text, TEXT_SEQS[0], base, open_ended)
                if not fits([plan], base, limits):
                    raise CapacityError(capacity_message(text, limits.max_outputs, limits.n_batch))
            plans.append(plan)
        if plans:
            results.extend(self._run(plans, choosers[len(results):] if choosers else None, limits))
        return results

    def _run(self, plans: Sequence[TextPlan], choosers: Sequence[Chooser] | None, limits: Limits) -> ScoreResult:
        """Decode laid-out texts together, packed or wave by wave, and read their candidates."""
        if choosers is None and self.pack and max(plan.n_waves for plan in plans) > PACK_ABOVE_WAVES:
            return self._run_packed(plans, limits)
        lib, memory = self._lib, self._memory
        try:
            for plan in plans:
                if plan.reused:
                    lib.llama_memory_seq_cp(memory, PREFIX_SEQ, plan.waves[0].seq, 0, plan.reused)
            values: list[NodeValues] = [{} for _ in plans]
            end = 0
            wave = 0
            while any(wave < plan.n_waves for plan in plans):  # a search adds waves as it goes
                for plan in plans:  # the kept prompt and prefix onto the wave's sequences
                    copies, carry = wave_copies(plan, wave)
                    for src, dst, p1 in copies:
                        lib.llama_memory_seq_cp(memory, src, dst, 0, p1)
                    if carry is not None:
                        lib.llama_memory_seq_rm(memory, carry, -1, -1)
                end = max(end, self._run_wave(plans, wave, values, choosers))
                wave += 1
            # Filler above this batch's span would widen every later decode's attention.
            self.cells.trim(attention_span(end))
        except BaseException:
            self.recover()
            raise
        partial = choosers is not None
        return [[candidate_values(candidate, values[i], partial=partial) for candidate in plan.text.candidates]
                for i, plan in enumerate(plans)]

    def _run_packed(self, plans: Sequence[TextPlan], limits: Limits) -> ScoreResult:
        """Decode laid-out texts with many branches per decode (:mod:`.packer`) and read their candidates."""
        assert self.ops is not None
        packer = Packer(self.ops, self.cells, self.decode, self.decoder.log_probs,
                        free_seqs=[seq for seq in TEXT_SEQS if seq not in {plan.waves[0].seq for plan in plans}],
                        scratch_seq=SCRATCH_SEQS[-1], max_outputs=limits.max_outputs, n_batch=limits.n_batch,
                        shared_outputs=limits.shared_outputs)
        try:
            values = packer.run(plans)
            self.cells.trim(attention_span(packer.end))
        except BaseException:
            self.recover()
            raise
        return [[candidate_values(candidate, values[i]) for candidate in plan.text.candidates]
                for i, plan in enumerate(plans)]

    def _run_wave(self, plans: Sequence[TextPlan], wave: int, values: list[NodeValues],
                  choosers: Sequence[Chooser] | None) -> int:
        """Decode wave ``wave`` and read its rows; returns one past the highest KV cell it used.

        A searched text's next wave is chosen here, before this one's cells are retired (what
        the next wave keeps stays)."""
        rows, nodes = wave_rows(plans, wave)
        placement = self.cells.place(rows, MIN_DECODE_TOKENS)
        self.decode(placement)
        for i, node, row in nodes:
            values[i][node] = self.decoder.log_probs(placement.batch_index[row], plans[i].reads_at[node])
        for i, plan in enumerate(plans):
            if choosers is not None and wave == plan.n_waves - 1 and (leaf := choosers[i](values[i])) is not None:
                add_wave(plan, leaf, values[i])
        for plan in plans:
            if (seq := retire_wave(self.cells, plan, wave)) is not None:
                self._lib.llama_memory_seq_rm(self._memory, seq, -1, -1)
        return placement.cells[-1] + 1
