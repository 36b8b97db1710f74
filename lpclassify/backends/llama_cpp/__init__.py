"""The llama.cpp backend: exact, fast scoring on llama-cpp-python's low-level bindings.

* :mod:`.backend` -- :class:`LlamaCppBackend`: the model, the context, the oracle;
* :mod:`.engine` -- the fast path: the pinned prefix and texts in waves; :mod:`.decoder` -- one decode call;
* :mod:`.planner` -- which rows go into which decode (pure Python, tested without a model);
* :mod:`.kv_cells` -- which KV cell every row lands in (pure Python);
* :mod:`.bindings`, :mod:`.vocab` -- loading llama.cpp, models, contexts; tokenizing.
"""

from .backend import EngineStats, LlamaCppBackend

__all__ = ["EngineStats", "LlamaCppBackend"]
