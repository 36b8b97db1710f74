"""The llama.cpp backend, on llama-cpp-python's low-level bindings.

Two scoring paths share one context:

* :meth:`LlamaCppBackend.score_reference` -- the oracle: every prompt+candidate evaluated on
  its own, in one decode, from an empty sequence. Slow and obviously right.
* :meth:`LlamaCppBackend.score` -- the engine (:mod:`.engine`): every token is decoded at most
  once per text. The caller's static prompt prefix is decoded once and kept on sequence 0; each
  text continues after the longest common token prefix with it. A text's candidates form a
  token trie, fed in waves (:mod:`.planner`): shared nodes once, a candidate's last token never
  (its probability is read from the row before it). Several texts share one decode call;
  logits are requested only for rows read, one per distinct trie prefix.

Numerics: these small quantized models turn a rounding difference in the last bit into
log-prob differences of 0.1-0.8 nats (8-bit activation quantization amplifies it), so the
engine reproduces the oracle bit for bit instead of approximately:

* tiny micro-batches run other CPU kernels: every decode is one micro-batch
  (``n_ubatch == n_batch``) padded to ``MIN_DECODE_TOKENS`` with throw-away tokens;
* repacked weights compute a row differently depending on its place in the batch: the
  model is loaded without them (``use_extra_bufts=False``);
* ggml multiplies K-quant weights by one kernel below 8 columns and another from 8 on, which
  round a few results differently: the wider one is pinned at every width
  (``bindings.TILED_AT_EVERY_WIDTH``), so a row does not depend on how many rows share its matmul;
* attention sums over KV cells in SIMD lanes, so a token's result depends on the cell index of
  every key modulo the SIMD stride: every token is placed in a cell congruent to its position
  modulo ``ALIGN``, as in a fresh context, and the shared prefix covers whole 16-cell softmax
  blocks (``PIN_BLOCK``). Cells in between are held by filler sequences so no padding token is
  decoded to skip them (:mod:`.kv_cells`);
* flash attention (half-precision accumulation) is off.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...errors import ModelError
from ...models.gguf import check_gguf
from ...tokenization import EncodedText
from ..base import ChatTemplate, ModelHandle, ModelIdentity, ScoreResult
from ..reference import check_reference_capacity, score_each_alone
from .bindings import KvMemory, KvState, create_context, default_threads, load_llama_cpp, load_model, pinned_kernel
from .decoder import Decoder, EngineStats
from .engine import PIN_BLOCK, Engine
from .kv_cells import KvCells, Row
from .planner import EXACT_OUTPUTS, FILLER_SEQS, N_SEQ_MAX, SCRATCH_SEQS, SHARED_OUTPUTS, TEXT_SEQS, Chooser, Limits
from .vocab import Vocab, chat_template_text, model_metadata

log = logging.getLogger("lpclassify")

# Every token is stored in a KV cell whose index is congruent to its position modulo ALIGN
# (the widest SIMD accumulation stride of ggml's CPU dot products: 64 halfs on AVX-512).
ALIGN = 64

__all__ = ["PIN_BLOCK", "EngineStats", "LlamaCppBackend"]


class LlamaCppBackend(ModelHandle):
    """A GGUF model loaded with llama.cpp, scoring candidates exactly and fast.

    ``n_ctx`` bounds one text (prompt + longest candidate); ``batch_size`` bounds how many
    texts share one decode call; ``n_batch`` bounds the tokens of one decode call.
    """

    def __init__(self, model_path: str | os.PathLike[str], *, n_ctx: int = 2048, batch_size: int = 8,
                 n_batch: int | None = None, threads: int | None = None, n_gpu_layers: int = 0,
                 max_outputs: int = 128, verbose: bool = False) -> None:
        llama_cpp, self._log = load_llama_cpp()
        self._log.verbose = verbose
        self._lib = llama_cpp
        self.model_path = Path(model_path)
        self.batch_size = batch_size
        self._n_ctx = n_ctx
        # One text always fits one decode, with room for alignment padding.
        self.n_batch = max(n_batch or 0, n_ctx + 8 * ALIGN)
        self.max_outputs = max_outputs
        self.threads = threads or default_threads()
        self.stats = EngineStats()
        self._lock = threading.RLock()

        # llama.cpp trusts the header of what it maps: a truncated or foreign file can crash the
        # process. Every load goes through the header check first (a few ms, no tensor data read).
        check_gguf(self.model_path)
        self._model = load_model(llama_cpp, self._log, self.model_path, n_gpu_layers)
        self.vocab = Vocab(llama_cpp, self._model)
        self.n_vocab = self.vocab.n_tokens
        self.add_bos = self.vocab.add_bos
        self.architecture = model_metadata(llama_cpp, self._model, "general.architecture") or "unknown"
        self.n_ctx_train = llama_cpp.llama_model_n_ctx_train(self._model)
        self.can_roll_back = not (llama_cpp.llama_model_is_recurrent(self._model)
                                  or llama_cpp.llama_model_is_hybrid(self._model))
        if n_ctx > self.n_ctx_train > 0:
            log.warning("n_ctx %d is larger than the %d tokens %s was trained on", n_ctx, self.n_ctx_train,
                        self.model_path.name)

        # KV cells: the pinned prefix (at most one text) plus one full batch, plus padding.
        n_cells = n_ctx + self.n_batch + 2 * ALIGN
        try:
            self._ctx = create_context(llama_cpp, self._log, self._model, n_cells=n_cells, n_batch=self.n_batch,
                                       n_seq_max=N_SEQ_MAX, threads=self.threads, max_outputs=max_outputs)
        except ModelError as exc:
            llama_cpp.llama_model_free(self._model)
            self._model = None
            raise ModelError(f"cannot create a context for {self.model_path} (n_ctx={n_ctx}): {exc}") from None
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._decoder = Decoder(llama_cpp, self._log, self._ctx, n_batch=self.n_batch, n_seq_max=N_SEQ_MAX,
                                n_vocab=self.n_vocab, stats=self.stats)
        self._bos = self.vocab.bos
        n_swa = llama_cpp.llama_model_n_swa(self._model)
        cells = KvCells(KvMemory(llama_cpp, self._memory), llama_cpp.llama_n_ctx(self._ctx), align=ALIGN,
                        filler_seqs=FILLER_SEQS, scratch_seqs=SCRATCH_SEQS,
                        padding_token=self._bos if self._bos >= 0 else 0,
                        window=n_swa // 2 if n_swa > 0 else None)
        self._engine = Engine(llama_cpp, self._memory, cells, self._decoder, n_ctx=n_ctx,
                              ops=KvState(llama_cpp, self._memory, self._ctx))
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
        return len(self._engine.pinned)

    def identity(self) -> ModelIdentity:
        """The model file this backend scores with (caches and resumed runs key on it)."""
        return ModelIdentity.of_file(self.model_path)

    def describe(self) -> dict[str, object]:
        return {"path": str(self.model_path), "architecture": self.architecture, "n_vocab": self.n_vocab,
                "n_ctx_train": self.n_ctx_train, "add_bos": self.add_bos, "threads": self.threads}

    def tokenize(self, text: str, add_bos: bool) -> list[int]:
        return self.vocab.tokenize(text, add_bos)

    def token_text(self, token: int) -> str:
        return self.vocab.token_text(token)

    def special_tokens(self, text: str) -> dict[str, int]:
        return self.vocab.special_tokens(text)
    def chat_template(self) -> ChatTemplate | None:
        source = chat_template_text(self._lib, self._model)
        bos, eos = (self.token_text(t) if t >= 0 else "" for t in (self.vocab.bos, self.vocab.eos))
        return ChatTemplate(source, bos, eos, self.model_path.name) if source is not None else None

    def close(self) -> None:
        """Free llama.cpp's memory now rather than at garbage collection."""
        if getattr(self, "_ctx", None):
            self._decoder.close()
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

    # ------------------------------------------------------------------ reference path

    def score_reference(self, texts: Sequence[EncodedText]) -> ScoreResult:
        """Each prompt+candidate alone, from an empty sequence, in one decode: the oracle."""
        with self._lock:
            results = score_each_alone(self._score_alone, texts)
            self.stats.texts += len(texts)
            return results

    def _score_alone(self, prompt: Sequence[int], continuation: Sequence[int]) -> np.ndarray:
        check_reference_capacity(continuation, self.max_outputs)  # llama.cpp would abort the process
        seq = TEXT_SEQS[0]
        tokens = list(prompt) + list(continuation[:-1])
        first_read = len(prompt) - 1
        rows = [Row(token, pos, [seq], pos >= first_read) for pos, token in enumerate(tokens)]
        engine = self._engine
        try:
            placement = engine.place_sequence(rows)
            engine.decode(placement)
            values = np.array([self._decoder.log_probs(placement.batch_index[rows[first_read + k]], {token})[token]
                               for k, token in enumerate(continuation)], dtype=np.float64)
            engine.finish_sequence(seq, rows, placement)
            return values
        except BaseException:
            engine.recover()
            raise

    # ------------------------------------------------------------------ engine

    def pinnable(self, prefix: Sequence[int]) -> tuple[int, ...]:
        """The part of ``prefix`` the engine keeps in the cache: whole 16-cell blocks within n_ctx."""
        return self._engine.pinnable(prefix)

    def score(self, texts: Sequence[EncodedText], *, prefix: Sequence[int] = ()) -> ScoreResult:
        """Per-token log-probs of every candidate of every text, each token decoded at most once.

        ``prefix``: tokens that start (almost) every prompt of the caller; decoded once and kept
        in the cache while callers keep asking for the same prefix.
        """
        if not self.can_roll_back:
            return self.score_reference(texts)
        with self._lock:
            results = self._engine.score(texts, prefix, self._limits())
            self.stats.texts += len(texts)
            return results

    def search(self, texts: Sequence[EncodedText], choosers: Sequence[Chooser], *,
               prefix: Sequence[int] = ()) -> ScoreResult:
        """:meth:`score`, decoding only the trie branches each text's chooser asks for, best first.

        After the prompt, and after each branch, ``choosers[i]`` gets the log-probs read so far
        (trie node -> token -> log p) and names the next fed node to decode through, or None.
        Tokens never read come back as NaN. Each branch is decoded exactly as :meth:`score`
        would, so every value read equals the oracle's.
        """
        if not self.can_roll_back:
            return self.score_reference(texts)
        with self._lock:
            results = self._engine.score(texts, prefix, self._limits(), choosers)
            self.stats.texts += len(texts)
            return results

    def _limits(self) -> Limits:
        # with ggml's K-quant kernel pinned (bindings.TILED_AT_EVERY_WIDTH) a row's bits do not depend
        # on how many rows a decode reads: shared decodes read up to planner.SHARED_OUTPUTS (for speed);
        # unpinned (LPCLASSIFY_PIN_KQUANT=0), as many as the oracle reads (EXACT_OUTPUTS)
        shared = SHARED_OUTPUTS if pinned_kernel() else EXACT_OUTPUTS
        return Limits(self.batch_size, self.max_outputs, self.n_batch, shared_outputs=min(self.max_outputs, shared))
