"""llama-cpp-python, imported lazily (it loads a shared library), and its log routed through Python."""

from __future__ import annotations

import collections
import ctypes
import os
import sys
from pathlib import Path
from typing import Any

from ...errors import ModelError


class KvMemory:
    """llama.cpp's memory operations, in the form the cell planner issues them."""

    def __init__(self, lib: Any, memory: Any) -> None:
        self._lib, self._memory = lib, memory

    def seq_rm(self, seq: int, p0: int, p1: int) -> None:
        self._lib.llama_memory_seq_rm(self._memory, seq, p0, p1)

    def seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None:
        self._lib.llama_memory_seq_cp(self._memory, src, dst, p0, p1)


class KvState(KvMemory):
    """KvMemory plus copies of a sequence's cells (positions and K/V bytes) through llama_state_seq_*."""

    def __init__(self, lib: Any, memory: Any, ctx: Any) -> None:
        super().__init__(lib, memory)
        self._ctx = ctx

    def save(self, seq: int) -> Any:
        size = self._lib.llama_state_seq_get_size(self._ctx, seq)
        saved = (ctypes.c_uint8 * size)()
        if self._lib.llama_state_seq_get_data(self._ctx, saved, size, seq) != size:
            raise RuntimeError(f"llama_state_seq_get_data could not save sequence {seq}")
        return saved

    def restore(self, saved: Any, seq: int) -> None:
        if self._lib.llama_state_seq_set_data(self._ctx, saved, len(saved), seq) != len(saved):
            raise RuntimeError(f"llama_state_seq_set_data could not restore {len(saved)} bytes into sequence {seq}")


class LogCapture:
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
                print(message, end="", file=sys.stderr, flush=True)

        self._callback = callback  # keep a reference: ctypes would free it
        llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))

    def reason(self) -> str:
        return "; ".join(self.recent) or "llama.cpp gave no reason"


_log_capture: LogCapture | None = None
_backend_initialised = False

# ggml's CPU backend (llama.cpp 0c1e570, as vendored by llama-cpp-python 0.3.36) multiplies K-quant
# weights (Q2_K-Q6_K, IQ*) by a tiled kernel when the matmul has 8+ columns (ggml-cpu/tiled/tiled.cpp,
# ggml_tiled_min_batch) and by vec_dot below that; the two round a few results differently. So a row
# depended on how many rows shared its matmul: 8+ tokens in a decode, or 8+ logit rows (the last layer
# runs on the logit rows only). Gemma 3's ffn_down and attn_output are K-quants. This switch takes the
# tiled kernel at every width; ggml reads it once, at its first K-quant matmul, so it is set here,
# before any model is loaded (tests/test_backend.py checks that it holds).
TILED_AT_EVERY_WIDTH = ("GGML_CPU_TILED_MM_FORCE", "1")


def pinned_kernel() -> bool:
    """Whether ggml's K-quant kernel is pinned (the default; LPCLASSIFY_PIN_KQUANT=0 turns it off).

    Pinned, decodes that several texts or branches share read up to 16 logit rows exactly. Side by
    side on 2-4 labels it was no slower than off (benchmarks/reports/ab-pin.md: 1.01-1.29x, every
    probability identical). Off, those decodes read at most 7 rows, as many as the oracle's.
    """
    return os.environ.get("LPCLASSIFY_PIN_KQUANT", "1") != "0"


def load_llama_cpp() -> tuple[Any, LogCapture]:
    """Import llama_cpp and set up logging and the backend once; returns the module and the log."""
    global _log_capture, _backend_initialised
    if pinned_kernel():
        name, value = TILED_AT_EVERY_WIDTH
        os.environ[name] = value
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ModelError(f"llama-cpp-python is not installed or failed to load ({exc}); "
                         "run `pip install llama-cpp-python`") from None
    if _log_capture is None:
        _log_capture = LogCapture()
    if not _backend_initialised:
        llama_cpp.llama_backend_init()
        _backend_initialised = True
    return llama_cpp, _log_capture


def load_model(lib: Any, log: LogCapture, path: Path, n_gpu_layers: int) -> Any:
    """Load a GGUF file's weights (ModelError with llama.cpp's reason if it cannot)."""
    params = lib.llama_model_default_params()
    params.n_gpu_layers = n_gpu_layers
    # No repacked weights: their kernels treat a row differently depending on where it falls
    # in the batch (4-row blocks vs. leftovers), which breaks batch invariance. (They also
    # crash on AMX CPUs with llama-cpp-python 0.3.36.)
    params.use_extra_bufts = False
    log.recent.clear()
    model = lib.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        raise ModelError(f"cannot load model {path}: {log.reason()}")
    return model


def create_context(lib: Any, log: LogCapture, model: Any, *, n_cells: int, n_batch: int, n_seq_max: int,
                   threads: int, max_outputs: int) -> Any:
    """A context set up for exact scoring (see the backend module docstring); ModelError if it fails."""
    params = lib.llama_context_default_params()
    params.n_ctx = n_cells
    params.n_batch = n_batch
    params.n_ubatch = n_batch  # one micro-batch per decode: tiny micro-batches run other kernels
    params.n_seq_max = n_seq_max
    params.n_threads = threads
    params.n_threads_batch = threads
    params.kv_unified = True  # a cell may belong to several sequences
    params.swa_full = True  # keep every cell for sliding-window models (Gemma 3)
    params.n_outputs_max = max_outputs  # bounds the logits buffer: no n_ctx x vocab array
    # Flash attention on the CPU accumulates in half precision and moves log-probs by up to
    # 0.7 nats against a plain evaluation: exactness comes first.
    params.flash_attn_type = lib.LLAMA_FLASH_ATTN_TYPE_DISABLED
    params.no_perf = True
    log.recent.clear()
    ctx = lib.llama_init_from_model(model, params)
    if not ctx:
        raise ModelError(log.reason())
    return ctx


def default_threads() -> int:
    """Physical-ish core count: llama.cpp gains nothing from SMT siblings."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        available = os.cpu_count() or 1
    return max(1, available)
