"""The engine's plan for a batch of texts, in pure Python: which rows go into which decode.

No llama.cpp here, so every rule is tested without a model (tests/test_kv_cells.py):

* a text's prompt rows start at the first aligned cell after the previous text (``plan_text``);
* its candidates form a token trie; every proper prefix of a candidate is fed once, and a
  candidate's last token never is (its probability is read from the row before it);
* branch k of the trie is decoded in wave k, sharing with branch k+1 what they share
  (``wave_rows``); only rows whose next token is scored ask for logits;
* texts share a decode only while the sequences, logit rows and cells allow, and while
  llama.cpp's attention span stays where the first text puts it (``fits``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ...tokenization import Candidate, EncodedText, common_prefix_length
from .kv_cells import KvCells, Row

# Sequence ids: the pinned prefix, the texts' trie branches, padding runs, filler lines.
# llama.cpp sizes its logits buffer for max(n_outputs_max, n_seq_max) rows: keep both at 128.
PREFIX_SEQ = 0
TEXT_SEQS = range(1, 48)
SCRATCH_SEQS = range(48, 64)
FILLER_SEQS = range(64, 128)  # one per line of ALIGN cells: the first 4096 cells
N_SEQ_MAX = 128
KV_STEP = 256  # llama.cpp pads the attended KV cells to a multiple of 256 (llama_kv_cache::get_n_kv)
# Decodes shorter than this are padded; llama.cpp's CPU kernels agree for 8+ token batches.
MIN_DECODE_TOKENS = 16

# A trie node: the tokens after the prompt (() is the last prompt row) -> log p of each token read there.
NodeValues = dict[tuple[int, ...], dict[int, float]]


@dataclass
class TextPlan:
    """Where one text's rows go: its prompt rows from ``start``, then its trie branches.

    ``leaves`` are the deepest fed trie nodes in depth-first order; branch k (the path to leaf
    k) is decoded in wave k on sequence ``seqs[k]``, into the cells right after the prompt.
    """

    text: EncodedText
    reused: int  # prompt tokens taken from the pinned prefix
    start: int  # KV cell of the first prompt row
    leaves: list[tuple[int, ...]]
    seqs: list[int]
    # trie node (tokens after the prompt; () is the last prompt row) -> candidate tokens read there.
    # Only scored tokens are read: a candidate's leading tokens that belong to its own prompt
    # (multi-label questions) are fed but never need the vocabulary-wide output row.
    reads_at: dict[tuple[int, ...], set[int]] = field(default_factory=dict)

    @property
    def n_prompt_rows(self) -> int:
        return len(self.text.prompt) - self.reused

    @property
    def end(self) -> int:
        """One past the last cell this text may use (room for its longest branch)."""
        return self.start + self.n_prompt_rows + max((len(leaf) for leaf in self.leaves), default=0)

    @property
    def n_outputs(self) -> int:
        return len(self.reads_at)

    @property
    def n_waves(self) -> int:
        """Decode waves this text takes part in: one per branch, at least the prompt's."""
        return max(1, len(self.leaves))

    def shared_depth(self, k: int) -> int:
        """How many leading tokens branch k shares with branch k + 1."""
        if k + 1 >= len(self.leaves):
            return 0
        return common_prefix_length(self.leaves[k], self.leaves[k + 1])



def plan_text(text: EncodedText, *, reused: int, start: int, first_seq: int) -> TextPlan:
    """Lay one text out with its prompt rows from cell ``start`` (after ``reused`` pinned tokens)."""
    # The fed trie: every proper prefix of a candidate (its last token is never fed).
    fed = {candidate.tokens[:depth] for candidate in text.candidates for depth in range(1, len(candidate.tokens))}
    leaves = sorted(node for node in fed if not any(other[: len(node)] == node and other != node for other in fed))
    plan = TextPlan(text=text, reused=reused, start=start, leaves=leaves,
                    seqs=list(range(first_seq, first_seq + max(1, len(leaves)))))
    for candidate in text.candidates:
        for depth in range(len(candidate.tokens) - candidate.n_scored, len(candidate.tokens)):
            plan.reads_at.setdefault(candidate.tokens[:depth], set()).add(candidate.tokens[depth])
    return plan


@dataclass(frozen=True)
class Limits:
    """What one decode allows: texts, logit rows, tokens (``n_batch``)."""

    batch_size: int
    max_outputs: int
    n_batch: int


def fits(plans: Sequence[TextPlan], base: int, limits: Limits) -> bool:
    """Whether these texts can share decode calls: texts, sequences, logit rows, cells, attention span."""
    return (len(plans) <= max(1, limits.batch_size) and plans[-1].seqs[-1] <= TEXT_SEQS[-1]
            and sum(plan.n_outputs for plan in plans) <= limits.max_outputs
            and plans[-1].end - base <= limits.n_batch - MIN_DECODE_TOKENS
            and attention_span(plans[-1].end) <= attention_span(plans[0].end))


ReadRow = tuple[int, tuple[int, ...], Row]  # (text index, trie node, its row)


def wave_rows(plans: Sequence[TextPlan], wave: int) -> tuple[list[tuple[Row, int]], list[ReadRow]]:
    """The rows of wave ``wave`` with their cells, and the rows read: (text index, trie node, row).

    Wave 0 carries every text's prompt rows; wave k every text's trie branch k (what it does not
    share with branch k-1, which is still in the cache).
    """
    rows: list[tuple[Row, int]] = []
    nodes: list[ReadRow] = []
    for i, plan in enumerate(plans):
        prompt = plan.text.prompt
        if wave == 0:
            for k, pos in enumerate(range(plan.reused, len(prompt))):
                row = Row(prompt[pos], pos, list(plan.seqs), pos == len(prompt) - 1 and () in plan.reads_at)
                rows.append((row, plan.start + k))
            if () in plan.reads_at:
                nodes.append((i, (), rows[-1][0]))
        if wave < len(plan.leaves):
            leaf = plan.leaves[wave]
            first = plan.shared_depth(wave - 1) if wave > 0 else 0
            for depth in range(first, len(leaf)):
                node = leaf[: depth + 1]
                seqs = [plan.seqs[k] for k in range(wave, len(plan.leaves)) if plan.leaves[k][: depth + 1] == node]
                row = Row(leaf[depth], len(prompt) + depth, seqs, node in plan.reads_at)
                rows.append((row, plan.start + plan.n_prompt_rows + depth))
                if row.logits:
                    nodes.append((i, node, row))
    return rows, nodes


def retire_branch(cells: KvCells, plan: TextPlan, wave: int) -> int | None:
    """After wave ``wave``: turn the cells of the text's branch that the next branch does not share
    into filler. Returns the sequence id to drop from llama.cpp's memory (None: nothing to do)."""
    if wave >= plan.n_waves:
        return None
    prompt_len = len(plan.text.prompt)
    leaf = plan.leaves[wave] if plan.leaves else ()
    seq = plan.seqs[wave]
    if wave == plan.n_waves - 1:  # the last branch: everything of the text goes
        cells.retire(seq, plan.start, plan.reused, plan.n_prompt_rows + len(leaf))
    else:  # only what the next branch does not share
        depth = plan.shared_depth(wave)
        cells.retire(seq, plan.start + plan.n_prompt_rows + depth, prompt_len + depth, len(leaf) - depth)
    return seq


def candidate_values(candidate: Candidate, values: dict[tuple[int, ...], dict[int, float]]) -> np.ndarray:
    """A candidate's per-token log-probs; NaN for its unscored leading tokens (never read)."""
    first_scored = len(candidate.tokens) - candidate.n_scored
    return np.array([values[candidate.tokens[:depth]][token] if depth >= first_scored else np.nan
                     for depth, token in enumerate(candidate.tokens)], dtype=np.float64)


def attention_span(end: int) -> int:
    """The KV cells llama.cpp's attention runs over when the last cell in use is ``end - 1``.

    Every row of a decode pays for each of them, so a text joins a decode only if it keeps
    this span where the decode's first text alone puts it (measured on Gemma 3, SST-2: three
    texts per decode at 256 cells beat four at 512 and eight at 768).
    """
    return -(-end // KV_STEP) * KV_STEP


