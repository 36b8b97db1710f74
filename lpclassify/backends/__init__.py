"""Model backends: the token-level engine behind the classifier.

* :mod:`.base` -- the protocol (and :class:`ModelIdentity`);
* :mod:`.reference` -- the oracle every fast path is held to;
* :mod:`.llama_cpp` -- the llama.cpp backend (imported on use: it loads a shared library).
"""

from .base import Backend, ModelIdentity, ScoreResult

__all__ = ["Backend", "ModelIdentity", "ScoreResult"]
