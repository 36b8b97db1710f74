"""The llama.cpp backend, on llama-cpp-python's low-level bindings.

Two scoring paths share one context:

* :meth:`LlamaCppBackend.score_reference` — the oracle: every prompt+candidate evaluated on
  its own, in one decode, from an empty sequence. Slow and obviously right.
* :meth:`LlamaCppBackend.score` — the engine: every token is decoded at most once per text.
  The static prompt prefix is decoded once and kept on sequence 0; each text continues after
  the longest common token prefix with it. A text's candidates form a token trie: shared
  leading tokens are fed once, tagged with the sequence id of every branch below them (a
  unified KV cache lets one cell belong to many sequences), and a candidate's last token is
  never fed, because its probability is read from the row before it. Several texts share
  one decode call, each on its own sequence ids; logits are requested only for rows read.

Numerics: these small quantized models turn a rounding difference in the last bit into
log-prob differences of 0.1-0.8 nats (8-bit activation quantization amplifies it), so the
engine reproduces the oracle bit for bit instead of approximately:

* tiny micro-batches run other CPU kernels: every decode is one micro-batch
  (``n_ubatch == n_batch``) padded to ``MIN_DECODE_TOKENS`` with throw-away tokens on a
  scratch sequence;
* repacked weights compute a row differently depending on its place in the batch: the
  model is loaded without them (``use_extra_bufts=False``);
* attention sums over KV cells in SIMD lanes, so a token's result depends on the cell
  index of every key modulo the SIMD stride: every token is placed in a cell congruent to
  its position modulo ``ALIGN``, as it would be in a fresh context, and the shared prefix
  covers whole 16-cell softmax blocks (``PIN_BLOCK``). The cells in between are held by
  filler sequences so no padding token is decoded to skip them (``kv_cells.py``);
* a text's second and later trie branches are decoded in later waves, each into the cells
  right after the prompt that the previous branch used, so every branch sees exactly the
  cells a lone evaluation would;
* flash attention (half-precision accumulation) is off.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CapacityError, ModelError
from ..gguf import check_gguf
from ..tokenization import Candidate, EncodedText, common_prefix_length
from .base import ScoreResult
from .kv_cells import KvCells, Placement, Row

log = logging.getLogger("lpclassify")

# Decodes shorter than this are padded; llama.cpp's CPU kernels agree for 8+ token batches.
MIN_DECODE_TOKENS = 16
# Every token is stored in a KV cell whose index is congruent to its position modulo ALIGN
# (the widest SIMD accumulation stride of ggml's CPU dot products: 64 halfs on AVX-512).
ALIGN = 64
# The pinned prefix is kept to whole multiples of this many cells: softmax sums a row in
# blocks of 16 floats, so a prefix block must not mix with a text's own cells.
PIN_BLOCK = 16
# Sequence ids: the pinned prefix, the texts' trie branches, padding runs, filler lines.
# llama.cpp sizes its logits buffer for max(n_outputs_max, n_seq_max) rows: keep both at 128.
PREFIX_SEQ = 0
TEXT_SEQS = range(1, 48)
SCRATCH_SEQS = range(48, 64)
FILLER_SEQS = range(64, 128)  # one per line of ALIGN cells: the first 4096 cells
N_SEQ_MAX = 128
KV_STEP = 256  # llama.cpp pads the attended KV cells to a multiple of 256 (llama_kv_cache::get_n_kv)


@dataclass
class EngineStats:
    """What the backend has done since it was created (for benchmarks and ``explain``)."""

    decode_calls: int = 0
    tokens_decoded: int = 0
    padding_tokens: int = 0
    logit_rows: int = 0
    texts: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _TextPlan:
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


class _KvMemory:
    """llama.cpp's memory operations, in the form the cell planner issues them."""

    def __init__(self, lib, memory) -> None:  # type: ignore[no-untyped-def]
        self._lib, self._memory = lib, memory

    def seq_rm(self, seq: int, p0: int, p1: int) -> None:
        self._lib.llama_memory_seq_rm(self._memory, seq, p0, p1)

    def seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None:
        self._lib.llama_memory_seq_cp(self._memory, src, dst, p0, p1)


class _LogCapture:
    """Routes llama.cpp's log through Python: silent unless verbose; keeps recent errors."""

    def __init__(self) -> None:
        self.verbose = False
        self.recent: collections.deque[str] = collections.deque(maxlen=20)
        import llama_cpp

        @llama_cpp.llama_log_callback
        def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            message = text.decode("utf-8", errors="replace")
            if level in (3, 4):  # GGML_LOG_LEVEL_WARN, _ERROR
                self.recent.append(message.strip())
            if self.verbose:
                print(message, end="", file=__import__("sys").stderr, flush=True)

        self._callback = callback  # keep a reference: ctypes would free it
        llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


_log_capture: _LogCapture | None = None
_backend_initialised = False


def _llama_cpp():  # type: ignore[no-untyped-def]
    """Import llama_cpp lazily (it loads a shared library) and set up logging once."""
    global _log_capture, _backend_initialised
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ModelError(f"llama-cpp-python is not installed or failed to load ({exc}); "
                         "run `pip install llama-cpp-python`") from None
    if _log_capture is None:
        _log_capture = _LogCapture()
    if not _backend_initialised:
        llama_cpp.llama_backend_init()
        _backend_initialised = True
    return llama_cpp


class LlamaCppBackend:
    """A GGUF model loaded with llama.cpp, scoring candidates exactly and fast.

    ``n_ctx`` bounds one text (prompt + longest candidate); ``batch_size`` bounds how many
    texts share one decode call; ``n_batch`` bounds the tokens of one decode call.
    """

    def __init__(self, model_path: str | os.PathLike[str], *, n_ctx: int = 2048, batch_size: int = 8,
                 n_batch: int | None = None, threads: int | None = None, n_gpu_layers: int = 0,
                 max_outputs: int = 128, verbose: bool = False) -> None:
        llama_cpp = _llama_cpp()
        assert _log_capture is not None
        _log_capture.verbose = verbose
        self._lib = llama_cpp
        self.model_path = Path(model_path)
        self.batch_size = batch_size
        self._n_ctx = n_ctx
        # One text always fits one decode, with room for alignment padding.
        self.n_batch = max(n_batch or 0, n_ctx + 8 * ALIGN)
        self.max_outputs = max_outputs
        self.threads = threads or _default_threads()
        self.stats = EngineStats()
        self._lock = threading.RLock()
        self._pinned: tuple[int, ...] = ()
        self._pin_wanted: tuple[int, ...] = ()  # what pin_prefix was asked for: restored after an error
        self._repin = False

        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = n_gpu_layers
        # No repacked weights: their kernels treat a row differently depending on where it falls
        # in the batch (4-row blocks vs. leftovers), which breaks batch invariance.
        model_params.use_extra_bufts = False
        # llama.cpp trusts the header of what it maps: a truncated or foreign file can crash the
        # process. Every load goes through the header check first (a few ms, no tensor data read).
        check_gguf(self.model_path)
        _log_capture.recent.clear()
        self._model = llama_cpp.llama_model_load_from_file(str(self.model_path).encode(), model_params)
        if not self._model:
            detail = "; ".join(_log_capture.recent) or "llama.cpp gave no reason"
            raise ModelError(f"cannot load model {self.model_path}: {detail}")
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self.architecture = self._meta("general.architecture") or "unknown"
        self.n_ctx_train = llama_cpp.llama_model_n_ctx_train(self._model)
        self.can_roll_back = not (llama_cpp.llama_model_is_recurrent(self._model)
                                  or llama_cpp.llama_model_is_hybrid(self._model))
        if n_ctx > self.n_ctx_train > 0:
            log.warning("n_ctx %d is larger than the %d tokens %s was trained on", n_ctx, self.n_ctx_train,
                        self.model_path.name)

        ctx_params = llama_cpp.llama_context_default_params()
        # KV cells: the pinned prefix (at most one text) plus one full batch, plus padding.
        ctx_params.n_ctx = n_ctx + self.n_batch + 2 * ALIGN
        ctx_params.n_batch = self.n_batch
        ctx_params.n_ubatch = self.n_batch  # one micro-batch per decode: see module docstring
        ctx_params.n_seq_max = N_SEQ_MAX
        ctx_params.n_threads = self.threads
        ctx_params.n_threads_batch = self.threads
        ctx_params.kv_unified = True  # a cell may belong to several sequences
        ctx_params.swa_full = True  # keep every cell for sliding-window models (Gemma 3)
        ctx_params.n_outputs_max = max_outputs  # bounds the logits buffer: no n_ctx x vocab array
        # Flash attention on the CPU accumulates in half precision and moves log-probs by up to
        # 0.7 nats against a plain evaluation: exactness comes first.
        ctx_params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        ctx_params.no_perf = True
        self._ctx = llama_cpp.llama_init_from_model(self._model, ctx_params)
        if not self._ctx:
            detail = "; ".join(_log_capture.recent) or "llama.cpp gave no reason"
            llama_cpp.llama_model_free(self._model)
            self._model = None
            raise ModelError(f"cannot create a context for {self.model_path} (n_ctx={n_ctx}): {detail}")
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, N_SEQ_MAX)
        self._bos = llama_cpp.llama_vocab_bos(self._vocab)
        n_swa = llama_cpp.llama_model_n_swa(self._model)
        self._cells = KvCells(_KvMemory(llama_cpp, self._memory), llama_cpp.llama_n_ctx(self._ctx), align=ALIGN,
                              filler_seqs=FILLER_SEQS, scratch_seqs=SCRATCH_SEQS,
                              padding_token=self._bos if self._bos >= 0 else 0,
                              window=n_swa // 2 if n_swa > 0 else None)
        if not self.can_roll_back:
            warnings.warn(f"{self.model_path.name} is a recurrent/hybrid model whose memory cannot be rolled "
                          "back; scoring falls back to the slower reference path", RuntimeWarning, stacklevel=2)

    # ------------------------------------------------------------------ basics

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def n_pinned(self) -> int:
        """Prompt tokens currently kept in the KV cache and reused by every text."""
        return len(self._pinned)

    def _meta(self, key: str) -> str | None:
        buffer = ctypes.create_string_buffer(256)
        n = self._lib.llama_model_meta_val_str(self._model, key.encode(), buffer, len(buffer))
        return buffer.value.decode("utf-8", errors="replace") if n >= 0 else None

    def describe(self) -> dict[str, object]:
        return {"path": str(self.model_path), "architecture": self.architecture, "n_vocab": self.n_vocab,
                "n_ctx_train": self.n_ctx_train, "add_bos": self.add_bos, "threads": self.threads}

    def tokenize(self, text: str, add_bos: bool) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        tokens = (self._lib.llama_token * capacity)()
        # parse_special=False: a text that contains "<bos>" is text, not a control token.
        n = self._lib.llama_tokenize(self._vocab, data, len(data), tokens, capacity, add_bos, False)
        if n < 0:
            capacity = -n
            tokens = (self._lib.llama_token * capacity)()
            n = self._lib.llama_tokenize(self._vocab, data, len(data), tokens, capacity, add_bos, False)
        return list(tokens[:n])

    def token_bytes(self, token: int) -> bytes:
        """The raw bytes of one token (a byte-level token may be part of a UTF-8 character)."""
        buffer = ctypes.create_string_buffer(256)
        n = self._lib.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, True)
        return buffer.raw[:max(n, 0)]

    def token_text(self, token: int) -> str:
        return self.token_bytes(token).decode("utf-8", errors="replace")

    def close(self) -> None:
        """Free llama.cpp's memory now rather than at garbage collection."""
        if getattr(self, "_ctx", None):
            self._lib.llama_batch_free(self._batch)
            self._lib.llama_free(self._ctx)
            self._ctx = None
        if getattr(self, "_model", None):
            self._lib.llama_model_free(self._model)
            self._model = None

    def __del__(self) -> None:
        try:  # noqa: SIM105 - at interpreter shutdown even contextlib may be gone
            self.close()
        except Exception:
            pass

    # ------------------------------------------------------------------ decoding

    def _decode(self, placement: Placement) -> None:
        """Decode one planned batch as one micro-batch, then turn its padding into filler."""
        lib = self._lib
        layout = placement.layout
        if len(layout) > self.n_batch:
            raise ValueError(f"a batch of {len(layout)} tokens exceeds n_batch={self.n_batch}; "
                             "raise runtime.n_ctx or use fewer, shorter completions")
        batch = self._batch
        for i, row in enumerate(layout):
            batch.token[i] = row.token
            batch.pos[i] = row.pos
            batch.n_seq_id[i] = len(row.seqs)
            for j, seq in enumerate(row.seqs):
                batch.seq_id[i][j] = seq
            batch.logits[i] = row.logits
        batch.n_tokens = len(layout)
        result = lib.llama_decode(self._ctx, batch)
        if result != 0:
            raise RuntimeError(f"llama_decode failed with code {result} on a batch of {len(layout)} tokens: "
                               + "; ".join(_log_capture.recent if _log_capture else []))
        self._cells.retire_padding(placement)
        self.stats.decode_calls += 1
        self.stats.tokens_decoded += len(layout) - placement.n_padding
        self.stats.padding_tokens += placement.n_padding
        self.stats.logit_rows += sum(row.logits for row in layout)

    def _reset_memory(self) -> None:
        """Forget every cell."""
        self._lib.llama_memory_clear(self._memory, True)
        self._cells.reset()
        self._pinned = ()

    def _recover(self) -> None:
        """After an error mid-decode the mirror of the cells cannot be trusted: start clean, and
        decode the pinned prefix again on the next call."""
        self._reset_memory()
        self._repin = True

    def _log_softmax_row(self, batch_index: int) -> tuple[np.ndarray, float]:
        """The float32 logits of one output row and their float64 log-normalizer."""
        pointer = self._lib.llama_get_logits_ith(self._ctx, batch_index)
        logits = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))
        wide = logits.astype(np.float64)
        peak = wide.max()
        return logits, float(peak + np.log(np.exp(wide - peak).sum()))

    def _log_probs(self, batch_index: int, tokens: set[int]) -> dict[int, float]:
        """log p(token) for each of ``tokens`` at one output row, normalized in float64."""
        logits, log_norm = self._log_softmax_row(batch_index)
        return {token: float(logits[token]) - log_norm for token in tokens}

    def _place_sequence(self, rows: list[Row]) -> Placement:
        """Plan rows of one sequence (positions from rows[0].pos) at the first aligned cells."""
        start = self._cells.text_start(self._cells.base, rows[0].pos)
        return self._cells.place([(row, start + k) for k, row in enumerate(rows)], MIN_DECODE_TOKENS)

    def _finish_sequence(self, seq: int, rows: list[Row], placement: Placement) -> None:
        start = placement.cells[placement.batch_index[rows[0]]]
        self._cells.retire(seq, start, rows[0].pos, len(rows))
        self._lib.llama_memory_seq_rm(self._memory, seq, -1, -1)

    # ------------------------------------------------------------------ reference path

    def score_reference(self, texts: Sequence[EncodedText]) -> ScoreResult:
        """Each prompt+candidate alone, from an empty sequence, in one decode: the oracle."""
        with self._lock:
            results = [[self._score_alone(text.prompt, candidate.tokens) for candidate in text.candidates]
                       for text in texts]
            self.stats.texts += len(texts)
            return results

    def _score_alone(self, prompt: Sequence[int], continuation: Sequence[int]) -> np.ndarray:
        if len(continuation) > self.max_outputs:  # llama.cpp would abort the process
            raise CapacityError(f"a completion of {len(continuation)} tokens exceeds the {self.max_outputs} logit rows "
                                "one decode may return: use shorter completions")
        seq = TEXT_SEQS[0]
        tokens = list(prompt) + list(continuation[:-1])
        first_read = len(prompt) - 1
        rows = [Row(token, pos, [seq], pos >= first_read) for pos, token in enumerate(tokens)]
        try:
            placement = self._place_sequence(rows)
            self._decode(placement)
            values = np.array([self._log_probs(placement.batch_index[rows[first_read + k]], {token})[token]
                               for k, token in enumerate(continuation)], dtype=np.float64)
            self._finish_sequence(seq, rows, placement)
            return values
        except BaseException:
            self._recover()
            raise

    # ------------------------------------------------------------------ engine

    def pin_prefix(self, tokens: Sequence[int]) -> None:
        """Decode ``tokens`` once on the prefix sequence; later texts reuse what they share."""
        with self._lock:
            tokens = tuple(tokens)[: self._n_ctx]
            tokens = tokens[: len(tokens) // PIN_BLOCK * PIN_BLOCK]
            self._pin_wanted, self._repin = tokens, False
            if tokens == self._pinned or not self.can_roll_back:
                return
            self._reset_memory()
            if tokens:
                rows = [Row(token, pos, [PREFIX_SEQ], False) for pos, token in enumerate(tokens)]
                try:
                    self._decode(self._cells.place([(row, pos) for pos, row in enumerate(rows)], MIN_DECODE_TOKENS))
                except BaseException:
                    self._reset_memory()
                    raise
            self._cells.pin(len(tokens))
            self._pinned = tokens

    def prompt_rate(self, n_tokens: int = 512, repeats: int = 3) -> float:
        """The model's raw prompt-processing rate (tokens/s): one long sequence, one big batch.

        The physical limit the engine is measured against (benchmarks/throughput.py).
        """
        import time

        with self._lock:
            n_tokens = min(n_tokens, self.n_batch - ALIGN)
            seq = TEXT_SEQS[0]
            best = float("inf")
            for _ in range(repeats):
                rows = [Row(self._bos if k == 0 else 1000 + k % 5000, k, [seq], k == n_tokens - 1)
                        for k in range(n_tokens)]
                placement = self._place_sequence(rows)
                began = time.perf_counter()
                try:
                    self._decode(placement)
                except BaseException:
                    self._recover()
                    raise
                best = min(best, time.perf_counter() - began)
                self._finish_sequence(seq, rows, placement)
            self._cells.trim(self._cells.base)
            return n_tokens / best

    def _shrink_pin(self, keep: int) -> None:
        """Keep only the first ``keep`` pinned tokens (a text shares fewer: reuse must stay exact)."""
        keep = keep // PIN_BLOCK * PIN_BLOCK
        self._lib.llama_memory_seq_rm(self._memory, PREFIX_SEQ, keep, -1)
        self._cells.unpin_from(keep)
        self._pinned = self._pinned[:keep]

    def _plan(self, text: EncodedText, first_seq: int, cursor: int) -> _TextPlan:
        """Lay one text out from the first aligned cell at or after ``cursor``."""
        reused = len(self._pinned)
        # The fed trie: every proper prefix of a candidate (its last token is never fed).
        fed = {candidate.tokens[:depth] for candidate in text.candidates for depth in range(1, len(candidate.tokens))}
        leaves = sorted(node for node in fed if not any(other[: len(node)] == node and other != node for other in fed))
        plan = _TextPlan(text=text, reused=reused, start=self._cells.text_start(cursor, reused), leaves=leaves,
                         seqs=list(range(first_seq, first_seq + max(1, len(leaves)))))
        for candidate in text.candidates:
            for depth in range(len(candidate.tokens) - candidate.n_scored, len(candidate.tokens)):
                plan.reads_at.setdefault(candidate.tokens[:depth], set()).add(candidate.tokens[depth])
        return plan

    def score(self, texts: Sequence[EncodedText]) -> ScoreResult:
        """Per-token log-probs of every candidate of every text, each token decoded at most once."""
        if not self.can_roll_back:
            return self.score_reference(texts)
        with self._lock:
            if self._repin:
                self.pin_prefix(self._pin_wanted)
            # Reuse must end before each text's last prompt token (its row scores the first tokens).
            shared = min((min(common_prefix_length(t.prompt, self._pinned), len(t.prompt) - 1) for t in texts),
                         default=len(self._pinned))
            if shared < len(self._pinned):
                self._shrink_pin(shared)
            results: ScoreResult = []
            plans: list[_TextPlan] = []
            for text in texts:
                plan = self._plan(text, plans[-1].seqs[-1] + 1 if plans else TEXT_SEQS[0],
                                  plans[-1].end if plans else self._cells.base)
                if plans and not self._fits([*plans, plan]):
                    results.extend(self._run(plans))
                    plans = []
                    plan = self._plan(text, TEXT_SEQS[0], self._cells.base)
                if not self._fits([plan]):
                    raise CapacityError(f"the completions need {len(plan.seqs)} trie branches and {plan.n_outputs} "
                                        f"logit rows per text; the engine allows at most {len(TEXT_SEQS)} and "
                                        f"{self.max_outputs}: use fewer or shorter completions")
                plans.append(plan)
            if plans:
                results.extend(self._run(plans))
            return results

    def _fits(self, plans: Sequence[_TextPlan]) -> bool:
        """Whether these texts can share decode calls: texts, sequences, logit rows, cells."""
        return (len(plans) <= max(1, self.batch_size) and plans[-1].seqs[-1] <= TEXT_SEQS[-1]
                and sum(plan.n_outputs for plan in plans) <= self.max_outputs
                and plans[-1].end - self._cells.base <= self.n_batch - MIN_DECODE_TOKENS
                and _attention_span(plans[-1].end) <= _attention_span(plans[0].end))

    def _run(self, plans: Sequence[_TextPlan]) -> ScoreResult:
        """Decode laid-out texts together, one wave per trie branch, and read their candidates."""
        try:
            for plan in plans:
                if plan.reused:
                    for seq in plan.seqs:
                        self._lib.llama_memory_seq_cp(self._memory, PREFIX_SEQ, seq, 0, plan.reused)
            values: list[dict[tuple[int, ...], dict[int, float]]] = [{} for _ in plans]
            end = 0
            for wave in range(max(plan.n_waves for plan in plans)):
                end = max(end, self._run_wave(plans, wave, values))
            # Filler above this batch's span would widen every later decode's attention.
            self._cells.trim(_attention_span(end))
        except BaseException:
            self._recover()
            raise
        self.stats.texts += len(plans)
        return [[_candidate_values(candidate, values[i]) for candidate in plan.text.candidates]
                for i, plan in enumerate(plans)]

    def _run_wave(self, plans: Sequence[_TextPlan], wave: int,
                  values: list[dict[tuple[int, ...], dict[int, float]]]) -> int:
        """Decode wave ``wave``: the prompts (wave 0) and every text's branch ``wave``.

        Returns one past the highest KV cell the wave used.
        """
        rows: list[tuple[Row, int]] = []
        nodes: list[tuple[int, tuple[int, ...], Row]] = []  # (text, trie node, its row) for rows read
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
        placement = self._cells.place(rows, MIN_DECODE_TOKENS)
        self._decode(placement)
        for i, node, row in nodes:
            values[i][node] = self._log_probs(placement.batch_index[row], plans[i].reads_at[node])
        for plan in plans:
            self._finish_branch(plan, wave)
        return placement.cells[-1] + 1

    def _finish_branch(self, plan: _TextPlan, wave: int) -> None:
        """Branch ``wave`` of a text is read: its cells become filler, its sequence goes."""
        if wave >= plan.n_waves:
            return
        prompt_len = len(plan.text.prompt)
        leaf = plan.leaves[wave] if plan.leaves else ()
        seq = plan.seqs[wave]
        if wave == plan.n_waves - 1:  # the last branch: everything of the text goes
            self._cells.retire(seq, plan.start, plan.reused, plan.n_prompt_rows + len(leaf))
        else:  # only what the next branch does not share
            depth = plan.shared_depth(wave)
            self._cells.retire(seq, plan.start + plan.n_prompt_rows + depth, prompt_len + depth, len(leaf) - depth)
        self._lib.llama_memory_seq_rm(self._memory, seq, -1, -1)


def _candidate_values(candidate: Candidate, values: dict[tuple[int, ...], dict[int, float]]) -> np.ndarray:
    """A candidate's per-token log-probs; NaN for its unscored leading tokens (never read)."""
    first_scored = len(candidate.tokens) - candidate.n_scored
    return np.array([values[candidate.tokens[:depth]][token] if depth >= first_scored else np.nan
                     for depth, token in enumerate(candidate.tokens)], dtype=np.float64)


def _attention_span(end: int) -> int:
    """The KV cells llama.cpp's attention runs over when the last cell in use is ``end - 1``.

    Every row of a decode pays for each of them, so a text joins a decode only if it keeps
    this span where the decode's first text alone puts it (measured on Gemma 3, SST-2: three
    texts per decode at 256 cells beat four at 512 and eight at 768).
    """
    return -(-end // KV_STEP) * KV_STEP


def _default_threads() -> int:
    """Physical-ish core count: llama.cpp gains nothing from SMT siblings."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        available = os.cpu_count() or 1
    return max(1, available)
