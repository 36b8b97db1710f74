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
  its position modulo ``ALIGN``, as it would be in a fresh context, with padding tokens
  where needed, and the shared prefix covers whole 16-cell softmax blocks (``PIN_BLOCK``);
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

from ..errors import ModelError
from ..gguf import check_gguf
from ..tokenization import EncodedText, common_prefix_length
from .base import ScoreResult

log = logging.getLogger("lpclassify")

# Decodes shorter than this are padded; llama.cpp's CPU kernels agree for 8+ token batches.
MIN_DECODE_TOKENS = 16
# Every token is stored in a KV cell whose index is congruent to its position modulo ALIGN
# (the widest SIMD accumulation stride of ggml's CPU dot products: 64 halfs on AVX-512).
ALIGN = 64
# The pinned prefix is kept to whole multiples of this many cells: softmax sums a row in
# blocks of 16 floats, so a prefix block must not mix with a text's own cells.
PIN_BLOCK = 16
PREFIX_SEQ = 0  # holds the pinned static prefix between calls


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
class _Row:
    token: int
    pos: int
    seqs: list[int]
    logits: bool


@dataclass
class _TextPlan:
    """How one text is laid out in a decode batch and where its answers will be read."""

    reused: int  # prompt tokens taken from the pinned prefix
    n_rows: int = 0  # rows this text adds to the batch, padding included
    seqs: list[int] = field(default_factory=list)
    # for every candidate and every token of it: (batch index of the row that predicts it, token id)
    reads: list[list[tuple[int, int]]] = field(default_factory=list)
    alone: list[int] = field(default_factory=list)  # candidates scored on their own after the batch
    prompt: tuple[int, ...] = ()
    candidates: list[tuple[int, ...]] = field(default_factory=list)

    @property
    def n_outputs(self) -> int:
        return len({index for reads in self.reads for index, _ in reads})


class _LogCapture:
    """Routes llama.cpp's log through Python: silent unless verbose; keeps recent errors."""

    def __init__(self) -> None:
        self.verbose = False
        self.recent: collections.deque[str] = collections.deque(maxlen=20)
        import llama_cpp

        @llama_cpp.llama_log_callback
        def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            message = text.decode("utf-8", errors="replace")
            if level in (2, 3):  # warn, error
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
        # One sequence id per fed trie branch; the last one is the padding scratch sequence.
        self.max_sequences = 64
        self._scratch_seq = self.max_sequences - 1
        self.threads = threads or _default_threads()
        self.stats = EngineStats()
        self._lock = threading.RLock()
        self._pinned: tuple[int, ...] = ()
        self._base = 0  # first KV cell after the pinned prefix: where every batch starts

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
        ctx_params.n_ctx = n_ctx + self.n_batch
        ctx_params.n_batch = self.n_batch
        ctx_params.n_ubatch = self.n_batch  # one micro-batch per decode: see module docstring
        ctx_params.n_seq_max = self.max_sequences
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
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, self.max_sequences)
        self._bos = llama_cpp.llama_vocab_bos(self._vocab)
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

    def _place(self, rows: Sequence[_Row], layout: list[_Row]) -> list[int]:
        """Append ``rows`` to ``layout`` so each lands in a KV cell congruent to its position.

        llama.cpp fills free cells in batch order from the first free cell, ``self._base``.
        Padding rows (scratch sequence, never read) shift a row into place where needed.
        Returns the rows' indices in the batch.
        """
        indices = []
        for row in rows:
            gap = (row.pos - (self._base + len(layout))) % ALIGN
            layout.extend(self._padding_row() for _ in range(gap))
            indices.append(len(layout))
            layout.append(row)
        return indices

    def _padding_row(self) -> _Row:
        return _Row(self._bos if self._bos >= 0 else 0, -1, [self._scratch_seq], False)

    def _decode(self, layout: list[_Row]) -> None:
        """Decode one batch as one micro-batch; tiny batches get padding rows at the end."""
        lib = self._lib
        layout = layout + [self._padding_row() for _ in range(MIN_DECODE_TOKENS - len(layout))]
        if len(layout) > self.n_batch:
            raise ValueError(f"a batch of {len(layout)} tokens exceeds n_batch={self.n_batch}; "
                             "raise runtime.n_ctx or use fewer, shorter completions")
        batch = self._batch
        scratch_pos = 0
        padding = 0
        for i, row in enumerate(layout):
            batch.token[i] = row.token
            if row.pos < 0:  # padding: consecutive positions of its own on the scratch sequence
                batch.pos[i] = scratch_pos
                scratch_pos += 1
                padding += 1
            else:
                batch.pos[i] = row.pos
            batch.n_seq_id[i] = len(row.seqs)
            for j, seq in enumerate(row.seqs):
                batch.seq_id[i][j] = seq
            batch.logits[i] = row.logits
        batch.n_tokens = len(layout)
        result = lib.llama_decode(self._ctx, batch)
        lib.llama_memory_seq_rm(self._memory, self._scratch_seq, -1, -1)
        if result != 0:
            raise RuntimeError(f"llama_decode failed with code {result} on a batch of {len(layout)} tokens: "
                               + "; ".join(_log_capture.recent if _log_capture else []))
        self.stats.decode_calls += 1
        self.stats.tokens_decoded += len(layout) - padding
        self.stats.padding_tokens += padding
        self.stats.logit_rows += sum(row.logits for row in layout)

    def _log_softmax_row(self, batch_index: int) -> tuple[np.ndarray, float]:
        """The float32 logits of one output row and their float64 log-normalizer."""
        pointer = self._lib.llama_get_logits_ith(self._ctx, batch_index)
        logits = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))
        wide = logits.astype(np.float64)
        peak = wide.max()
        return logits, float(peak + np.log(np.exp(wide - peak).sum()))

    def _read(self, reads: Sequence[tuple[int, int]], cache: dict[int, tuple[np.ndarray, float]]) -> np.ndarray:
        """log p(token) at each (batch index, token): one float64 log-softmax per distinct row."""
        values = np.empty(len(reads), dtype=np.float64)
        for k, (index, token) in enumerate(reads):
            if index not in cache:
                cache[index] = self._log_softmax_row(index)
            logits, log_norm = cache[index]
            values[k] = float(logits[token]) - log_norm
        return values

    # ------------------------------------------------------------------ reference path

    def score_reference(self, texts: Sequence[EncodedText]) -> ScoreResult:
        """Each prompt+candidate alone, from an empty sequence, in one decode: the oracle."""
        with self._lock:
            results = [[self._score_alone(text.prompt, candidate.tokens) for candidate in text.candidates]
                       for text in texts]
            self.stats.texts += len(texts)
            return results

    def _score_alone(self, prompt: Sequence[int], continuation: Sequence[int]) -> np.ndarray:
        seq = 1
        tokens = list(prompt) + list(continuation[:-1])
        first_read = len(prompt) - 1
        layout: list[_Row] = []
        indices = self._place([_Row(token, pos, [seq], pos >= first_read) for pos, token in enumerate(tokens)],
                              layout)
        try:
            self._decode(layout)
            return self._read([(indices[first_read + k], token) for k, token in enumerate(continuation)], {})
        finally:
            self._lib.llama_memory_seq_rm(self._memory, seq, -1, -1)

    # ------------------------------------------------------------------ engine

    def pin_prefix(self, tokens: Sequence[int]) -> None:
        """Decode ``tokens`` once on the prefix sequence; later texts reuse what they share."""
        with self._lock:
            tokens = tuple(tokens)[: self._n_ctx]
            tokens = tokens[: len(tokens) // PIN_BLOCK * PIN_BLOCK]
            if tokens == self._pinned or not self.can_roll_back:
                return
            self._lib.llama_memory_clear(self._memory, True)
            self._pinned, self._base = (), 0
            if tokens:
                layout: list[_Row] = []
                self._place([_Row(token, pos, [PREFIX_SEQ], False) for pos, token in enumerate(tokens)], layout)
                self._decode(layout)
            self._pinned, self._base = tokens, len(tokens)

    def prompt_rate(self, n_tokens: int = 512, repeats: int = 3) -> float:
        """The model's raw prompt-processing rate (tokens/s): one long sequence, one big batch.

        The physical limit the engine is measured against (benchmarks/throughput.py).
        """
        import time

        with self._lock:
            n_tokens = min(n_tokens, self.n_batch - ALIGN)
            seq = 1
            rows = [_Row(self._bos if k == 0 else 1000 + k % 5000, k, [seq], k == n_tokens - 1)
                    for k in range(n_tokens)]
            best = float("inf")
            for _ in range(repeats):
                layout: list[_Row] = []
                self._place(rows, layout)
                start = time.perf_counter()
                try:
                    self._decode(layout)
                finally:
                    self._lib.llama_memory_seq_rm(self._memory, seq, -1, -1)
                best = min(best, time.perf_counter() - start)
            return n_tokens / best

    def _shrink_pin(self, keep: int) -> None:
        """Keep only the first ``keep`` pinned tokens (a text shares fewer: reuse must stay exact)."""
        keep = keep // PIN_BLOCK * PIN_BLOCK
        self._lib.llama_memory_seq_rm(self._memory, PREFIX_SEQ, keep, -1)
        self._pinned, self._base = self._pinned[:keep], keep

    def _plan(self, text: EncodedText, next_seq: int, layout: list[_Row]) -> _TextPlan:
        """Lay one text out at the end of ``layout``: prompt rows past the pin, then its trie."""
        prompt = text.prompt
        reused = len(self._pinned)
        plan = _TextPlan(reused=reused)
        # The fed trie: every proper prefix of a candidate (its last token is never fed),
        # in depth-first order so a node's first child lands in the very next cell.
        prefixes: list[tuple[int, ...]] = []
        seen: set[tuple[int, ...]] = set()
        for candidate in text.candidates:
            for depth in range(1, len(candidate.tokens)):
                prefix = candidate.tokens[:depth]
                if prefix not in seen:
                    seen.add(prefix)
                    prefixes.append(prefix)
        # Only the first branch of the trie is fed with the prompt. A second branch would sit in
        # other KV cells than in a lone evaluation (the first branch holds the cells right after
        # the prompt) and attention sums blocks of cells, so its candidates are scored on
        # their own, exactly, after the batch. Single-token candidates never need a branch.
        if prefixes:
            first = max((p for p in prefixes if p[0] == prefixes[0][0]), key=len)
            prefixes = [p for p in prefixes if first[: len(p)] == p]
        fed = set(prefixes)
        leaves = [prefixes[-1]] if prefixes else []
        seq_of_leaf = {leaf: next_seq + i for i, leaf in enumerate(leaves)}
        plan.seqs = list(seq_of_leaf.values()) or [next_seq]
        prompt_rows = [_Row(prompt[pos], pos, plan.seqs, pos == len(prompt) - 1) for pos in range(reused, len(prompt))]
        node_rows = [_Row(prefix[-1], len(prompt) + len(prefix) - 1,
                          [seq for leaf, seq in seq_of_leaf.items() if leaf[: len(prefix)] == prefix], True)
                     for prefix in prefixes]
        start = len(layout)
        indices = self._place(prompt_rows + node_rows, layout)
        plan.n_rows = len(layout) - start
        last_prompt = indices[len(prompt_rows) - 1]
        index_of = dict(zip(prefixes, indices[len(prompt_rows):]))
        for k, candidate in enumerate(text.candidates):
            if all(candidate.tokens[:depth] in fed for depth in range(1, len(candidate.tokens))):
                plan.reads.append([(last_prompt if depth == 0 else index_of[candidate.tokens[:depth]], token)
                                   for depth, token in enumerate(candidate.tokens)])
            else:
                plan.reads.append([])
                plan.alone.append(k)
        plan.prompt = prompt
        plan.candidates = [candidate.tokens for candidate in text.candidates]
        return plan

    def score(self, texts: Sequence[EncodedText]) -> ScoreResult:
        """Per-token log-probs of every candidate of every text, each token decoded at most once."""
        if not self.can_roll_back:
            return self.score_reference(texts)
        with self._lock:
            # Reuse must end before each text's last prompt token (its row scores the first tokens).
            shared = min((min(common_prefix_length(t.prompt, self._pinned), len(t.prompt) - 1) for t in texts),
                         default=len(self._pinned))
            if shared < len(self._pinned):
                self._shrink_pin(shared)
            results: ScoreResult = []
            layout: list[_Row] = []
            plans: list[_TextPlan] = []
            for text in texts:
                mark = len(layout)
                plan = self._plan(text, plans[-1].seqs[-1] + 1 if plans else 1, layout)
                full = (len(plans) >= self.batch_size or len(layout) > self.n_batch
                        or plan.seqs[-1] >= self._scratch_seq
                        or sum(p.n_outputs for p in plans) + plan.n_outputs > self.max_outputs)
                if plans and full:
                    del layout[mark:]
                    results.extend(self._run(plans, layout))
                    layout, plans = [], []
                    plan = self._plan(text, 1, layout)
                if plan.seqs[-1] >= self._scratch_seq or plan.n_outputs > self.max_outputs:
                    raise ValueError(f"a text needs {len(plan.seqs)} sequences and {plan.n_outputs} logit rows; "
                                     f"the engine allows {self._scratch_seq - 1} and {self.max_outputs}: "
                                     "use fewer or shorter completions")
                plans.append(plan)
            if plans:
                results.extend(self._run(plans, layout))
            return results

    def _run(self, plans: Sequence[_TextPlan], layout: list[_Row]) -> ScoreResult:
        """Decode several laid-out texts in one call and read their candidates' log-probs."""
        lib = self._lib
        try:
            for plan in plans:
                if plan.reused:
                    for seq in plan.seqs:
                        lib.llama_memory_seq_cp(self._memory, PREFIX_SEQ, seq, 0, plan.reused)
            self._decode(layout)
            results: ScoreResult = []
            for plan in plans:
                cache: dict[int, tuple[np.ndarray, float]] = {}
                results.append([self._read(reads, cache) for reads in plan.reads])
        finally:
            for plan in plans:
                for seq in plan.seqs:
                    lib.llama_memory_seq_rm(self._memory, seq, -1, -1)
        for plan, per_candidate in zip(plans, results):
            for k in plan.alone:
                per_candidate[k] = self._score_alone(plan.prompt, plan.candidates[k])
        self.stats.texts += len(plans)
        return results


def _default_threads() -> int:
    """Physical-ish core count: llama.cpp gains nothing from SMT siblings."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        available = os.cpu_count() or 1
    return max(1, available)
