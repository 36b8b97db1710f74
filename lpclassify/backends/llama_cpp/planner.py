"""The engine's plan for a batch of texts, in pure Python: which rows go into which decode.

No llama.cpp here, so every rule is tested without a model (tests/test_planner.py, tests/test_kv_cells.py):

* a text's prompt rows start at the first aligned cell after the previous text (``plan_text``);
* its candidates form a token trie; every proper prefix of a candidate is fed once, and a
  candidate's last token never is (its probability is read from the row before it);
* the trie is fed one branch per wave, what the next branch shares kept in the cache, so
  however many labels, the prompt is decoded once and every trie node once, on two sequence
  ids per text (``Wave``, ``wave_copies``, ``wave_rows``, ``retire_wave``);
* only rows whose next token is scored ask for logits: one per distinct read prefix, so a
  thousand one-token labels share one row;
* texts share a decode only while the sequences, logit rows and cells allow (at most
  ``Limits.shared_outputs`` logit rows), and while llama.cpp's attention span stays
  where the first text puts it (``fits``).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
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
MIN_DECODE_TOKENS = 8
# The same threshold on the other side: llama.cpp runs the last layer after attention on the logit
# rows only (inp_out_ids), so its matmuls see one column per logit row, and a row's result is one
# value for 1-7 logit rows per decode and another for 8+ (Gemma 3: its last ffn_down, Q6_K, moves a
# few rows' logits, up to 2.8e-3 nats in log p; SmolLM2, Q4_1, showed no change). The oracle reads
# a completion's scored tokens, 1-7 rows for completions under 8 tokens, so without a pinned
# kernel texts and branches share a decode only while it reads at most this many rows (the
# Limits default). The llama.cpp backend pins ggml's K-quant kernel at every width
# (bindings.TILED_AT_EVERY_WIDTH: the switch is ggml_tiled_min_batch, 8 src1 columns) and raises
# the cap to SHARED_OUTPUTS.
EXACT_OUTPUTS = 7
# With the kernel pinned any count is exact; this one is chosen for speed. Uncapped, a packed decode
# took so many branch regions that filling the KV cells between them cost more than the decodes it
# saved (benchmarks/labels.py --quick --compare-waves, 4 texts, 1 thread: SmolLM2 20 labels 0.88x
# the wave plan uncapped, 1.36-1.42x at 16; Gemma 3 20 labels 1.16x at 32, 1.30x at 16; at 150 and
# 1,000 labels 16 and 32 within 8 % of each other).
SHARED_OUTPUTS = 16

# A trie node: the tokens after the prompt (() is the last prompt row) -> log p of each token read there.
NodeValues = dict[tuple[int, ...], dict[int, float]]
# A best-first search's choice after each wave: the next branch of a text to decode (None: done).
Chooser = Callable[[NodeValues], "tuple[int, ...] | None"]


ReadRow = tuple[int, tuple[int, ...], Row]  # (text index, trie node, its row)


@dataclass(frozen=True)
class Wave:
    """One decode's share of a text: one trie branch, decoded after ``kept`` (a prefix of it left in
    the cache by the previous wave) into the cells right after the prompt, on sequence ``seq``."""

    leaf: tuple[int, ...]  # () for a text whose trie feeds nothing: the prompt alone
    kept: tuple[int, ...]
    seq: int
    n_outputs: int  # logit rows this wave reads for the text
    reads: frozenset[tuple[int, ...]] | None = None  # the nodes it reads; None: every read node it feeds


@dataclass
class TextPlan:
    """Where one text's rows go: its prompt rows from ``start``, then its trie branches in waves.

    Wave k decodes branch k (the path to the k-th deepest fed node, depth-first), except what it
    shares with branch k-1, which stays in the cache: every trie node is decoded once, however
    many labels. A branch goes into the cells right after the prompt, exactly as in a lone
    evaluation: two branches of one text in one decode would need cells elsewhere, and a text's
    keys split over other 16-cell softmax blocks sum in another order (a 0.05-nat difference on
    Gemma 3). The waves of several texts share decodes. (:mod:`.packer`, the default for
    exhaustive scoring, uses only wave 0, the prompt with its first branch, and packs the other
    branches.)
    Two sequence ids serve any number of branches: each wave copies the kept prompt and prefix
    from the previous wave's sequence onto its own.
    """

    text: EncodedText
    reused: int  # prompt tokens taken from the pinned prefix
    start: int  # KV cell of the first prompt row
    waves: list[Wave]
    # trie node (tokens after the prompt; () is the last prompt row) -> candidate tokens read there.
    # Only scored tokens are read: a candidate's leading tokens that belong to its own prompt
    # (multi-label questions) are fed but never need the vocabulary-wide output row.
    reads_at: dict[tuple[int, ...], set[int]] = field(default_factory=dict)
    # Open-ended: the waves after the first are chosen while decoding (best-first search), so
    # cells, sequences and logit rows are reserved for any branch.
    open_ended: bool = False

    @property
    def n_prompt_rows(self) -> int:
        return len(self.text.prompt) - self.reused

    @property
    def longest_leaf(self) -> int:
        if self.open_ended:
            return max(len(candidate.tokens) for candidate in self.text.candidates) - 1
        return max(len(wave.leaf) for wave in self.waves)

    @property
    def end(self) -> int:
        """One past the last cell this text may use (room for its longest branch)."""
        return self.start + self.n_prompt_rows + self.longest_leaf

    @property
    def seqs(self) -> list[int]:
        """Every sequence id the text uses."""
        first = self.waves[0].seq
        return [first, first + 1] if self.open_ended else sorted({wave.seq for wave in self.waves})

    @property
    def n_outputs(self) -> int:
        """The most logit rows one of its waves reads."""
        if self.open_ended:  # the prompt's row alone, then at most a branch's nodes
            return max(1, self.longest_leaf)
        return max(wave.n_outputs for wave in self.waves)

    @property
    def n_waves(self) -> int:
        return len(self.waves)


@dataclass(frozen=True)
class Limits:
    """What one decode allows: texts, logit rows, tokens (``n_batch``), and the logit rows of a
    decode that several texts or branches share (``shared_outputs``; one alone reads up to
    ``max_outputs``)."""

    batch_size: int
    max_outputs: int
    n_batch: int
    shared_outputs: int = EXACT_OUTPUTS


def trie_leaves(text: EncodedText) -> list[tuple[int, ...]]:
    """The deepest fed nodes (every proper prefix of a candidate is fed), sorted depth-first."""
    fed = {candidate.tokens[:depth] for candidate in text.candidates for depth in range(1, len(candidate.tokens))}
    return sorted(fed - {node[:-1] for node in fed})


def plan_text(text: EncodedText, *, reused: int, start: int, first_seq: int) -> TextPlan:
    """Lay one text out: prompt rows from cell ``start`` (after ``reused`` pinned tokens), then one
    wave per trie branch, on sequences ``first_seq`` and ``first_seq + 1`` in turn."""
    reads_at: dict[tuple[int, ...], set[int]] = {}
    for candidate in text.candidates:
        for depth in range(len(candidate.tokens) - candidate.n_scored, len(candidate.tokens)):
            reads_at.setdefault(candidate.tokens[:depth], set()).add(candidate.tokens[depth])
    waves: list[Wave] = []
    previous: tuple[int, ...] = ()
    for k, leaf in enumerate(trie_leaves(text) or [()]):
        kept = leaf[: common_prefix_length(leaf, previous)]
        fresh = sum(1 for depth in range(len(kept) + 1, len(leaf) + 1) if leaf[:depth] in reads_at)
        waves.append(Wave(leaf, kept, first_seq + k % 2, fresh + (1 if k == 0 and () in reads_at else 0)))
        previous = leaf
    return TextPlan(text=text, reused=reused, start=start, waves=waves, reads_at=reads_at)


def plan_open(text: EncodedText, *, reused: int, start: int, first_seq: int) -> TextPlan:
    """Lay one text out for a best-first search: the first wave decodes the prompt alone (its last
    row reads every first token); later waves are added with :func:`add_wave` as the search goes."""
    plan = plan_text(text, reused=reused, start=start, first_seq=first_seq)
    first = Wave((), (), first_seq, 1 if () in plan.reads_at else 0)
    return TextPlan(text=text, reused=reused, start=start, waves=[first], reads_at=plan.reads_at, open_ended=True)


def add_wave(plan: TextPlan, leaf: tuple[int, ...], read: Container[tuple[int, ...]]) -> None:
    """Append a wave decoding the branch to ``leaf`` (a fed node) past what the last wave keeps;
    it reads the nodes it feeds that are read and not in ``read`` (already read)."""
    last = plan.waves[-1]
    kept = leaf[: common_prefix_length(leaf, last.leaf)]
    reads = frozenset(leaf[:depth] for depth in range(len(kept) + 1, len(leaf) + 1)
                      if leaf[:depth] in plan.reads_at and leaf[:depth] not in read)
    plan.waves.append(Wave(leaf, kept, plan.waves[0].seq + len(plan.waves) % 2, len(reads), reads))


def wave_copies(plan: TextPlan, wave: int) -> tuple[list[tuple[int, int, int]], int | None]:
    """Before wave ``wave`` (> 0): ``(src, dst, p1)``, the copy of the kept prompt and prefix (positions
    below p1) onto the wave's sequence, and the previous wave's sequence, to drop afterwards."""
    if wave == 0 or wave >= plan.n_waves:
        return [], None
    carry, current = plan.waves[wave - 1].seq, plan.waves[wave]
    return [(carry, current.seq, len(plan.text.prompt) + len(current.kept))], carry


def wave_rows(plans: Sequence[TextPlan], wave: int) -> tuple[list[tuple[Row, int]], list[ReadRow]]:
    """The rows of wave ``wave`` with their cells (ascending), and the rows read.

    Wave 0 carries every text's prompt rows; every wave each text's branch past what it keeps.
    """
    rows: list[tuple[Row, int]] = []
    nodes: list[ReadRow] = []
    for i, plan in enumerate(plans):
        if wave >= plan.n_waves:
            continue
        current = plan.waves[wave]
        prompt = plan.text.prompt
        if wave == 0:
            for k, pos in enumerate(range(plan.reused, len(prompt))):
                row = Row(prompt[pos], pos, [current.seq], pos == len(prompt) - 1 and () in plan.reads_at)
                rows.append((row, plan.start + k))
            if () in plan.reads_at:
                nodes.append((i, (), rows[-1][0]))
        for depth in range(len(current.kept), len(current.leaf)):
            node = current.leaf[: depth + 1]
            read = node in plan.reads_at if current.reads is None else node in current.reads
            row = Row(current.leaf[depth], len(prompt) + depth, [current.seq], read)
            rows.append((row, plan.start + plan.n_prompt_rows + depth))
            if row.logits:
                nodes.append((i, node, row))
    return rows, nodes


def retire_wave(cells: KvCells, plan: TextPlan, wave: int) -> int | None:
    """After wave ``wave``: turn the text's cells that the next wave does not keep into filler.

    Returns the sequence to drop from llama.cpp's memory now (None: it carries the kept part on).
    """
    if wave >= plan.n_waves:
        return None
    current = plan.waves[wave]
    if wave == plan.n_waves - 1:  # the last wave: everything of the text goes
        cells.retire(current.seq, plan.start, plan.reused, plan.n_prompt_rows + len(current.leaf))
        return current.seq
    keep = len(plan.waves[wave + 1].kept)
    cells.retire(current.seq, plan.start + plan.n_prompt_rows + keep, len(plan.text.prompt) + keep,
                 len(current.leaf) - keep)
    return None


def fits(plans: Sequence[TextPlan], base: int, limits: Limits) -> bool:
    """Whether these texts can share decode calls: texts, sequences, logit rows, cells, attention span.

    The span rule is also what keeps a text's scores independent of its batch: decodes whose
    texts widened the span beyond the first text's came out up to 2.2e-3 nats off the oracle
    (Gemma 3, 77 labels, 8 AG News texts per decode).
    """
    return (len(plans) <= max(1, limits.batch_size) and plans[-1].seqs[-1] <= TEXT_SEQS[-1]
            and shared_outputs(plans) <= output_cap(limits.max_outputs, limits.shared_outputs, len(plans))
            and plans[-1].end - base <= limits.n_batch - MIN_DECODE_TOKENS
            and attention_span(plans[-1].end) <= attention_span(plans[0].end))


def shared_outputs(plans: Sequence[TextPlan]) -> int:
    """The most logit rows one decode of these texts reads: wave k of each text in decode k
    (a searched text's waves are not known yet: its most rows in every decode)."""
    if any(plan.open_ended for plan in plans):
        return sum(plan.n_outputs for plan in plans)
    return max(sum(plan.waves[k].n_outputs for plan in plans if k < plan.n_waves)
               for k in range(max(plan.n_waves for plan in plans)))


def output_cap(max_outputs: int, shared_outputs: int, n_parts: int) -> int:
    """The logit rows a decode of ``n_parts`` texts or branches may read: a lone one up to
    ``max_outputs`` (a completion of 8+ tokens), shared ones up to ``shared_outputs`` too."""
    return max_outputs if n_parts <= 1 else min(max_outputs, shared_outputs)


def capacity_message(text: EncodedText, max_outputs: int, n_batch: int) -> str:
    """Why a text cannot be scored at all: one of its completions needs more than a decode allows."""
    longest = max(len(candidate.tokens) for candidate in text.candidates)
    return (f"a completion of {longest} tokens needs more logit rows or KV cells than one decode allows "
            f"({max_outputs} logit rows, n_batch {n_batch}): use shorter completions or raise runtime.n_ctx")


def candidate_values(candidate: Candidate, values: NodeValues, *, partial: bool = False) -> np.ndarray:
    """A candidate's per-token log-probs; NaN for its unscored leading tokens (never read) and,
    when ``partial`` (a pruned search), for tokens whose row was never decoded."""
    first_scored = len(candidate.tokens) - candidate.n_scored
    out = np.full(len(candidate.tokens), np.nan)
    for depth in range(first_scored, len(candidate.tokens)):
        node = candidate.tokens[:depth]
        if partial and node not in values:
            break
        out[depth] = values[node][candidate.tokens[depth]]
    return out


def attention_span(end: int) -> int:
    """The KV cells llama.cpp's attention runs over when the last cell in use is ``end - 1``.

    Every row of a decode pays for each of them, so a text joins a decode only if it keeps
    this span where the decode's first text alone puts it (measured on Gemma 3, SST-2: three
    texts per decode at 256 cells beat four at 512 and eight at 768).
    """
    return -(-end // KV_STEP) * KV_STEP


