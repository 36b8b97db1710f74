"""The two small JSON formats calibration persists, and where they live.

* Reference-score files: a cache of input-independent model outputs (content-free inputs, the
  neutral context, domain inputs), one file per (model file, rendered prompt + completions).
* Calibration files: fitted parameters and domain priors written by ``lpclassify calibrate``,
  read through ``scoring.calibration_file``. Besides the parameters, a file records what they were
  fitted under, so that a config they do not fit is told so: ``labels`` (refused if different),
  ``model`` (a warning), ``normalize``/``aggregate`` (fitted parameters refused, a stored domain
  prior recomputed) and ``direction`` (``scoring.direction``; refused if different).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import InputError
from ..records.files import write_json_atomic

REFERENCE_FORMAT = "lpclassify-reference-scores"
CALIBRATION_FORMAT = "lpclassify-calibration"

log = logging.getLogger("lpclassify")


def reference_cache_dir() -> Path:
    """Where reference scores are cached: ``$LPCLASSIFY_CACHE/calibration``, else beside the model cache."""
    override = os.environ.get("LPCLASSIFY_CACHE")
    if override:
        return Path(override).expanduser() / "calibration"
    from ..models import cache_dir  # the models package is heavy; only this default needs it

    return cache_dir().parent / "calibration"


def reference_key(model: Mapping[str, object], setting: object) -> str:
    """sha256 over the model's identity and everything else reference scores depend on (as JSON)."""
    blob = json.dumps({"model": dict(model), "setting": setting}, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def read_reference_file(path: Path) -> dict[str, tuple[list[float], list[int]]]:
    """The cached ``{text: (logprobs, n_tokens)}`` entries of one reference file; ``{}`` if absent or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != REFERENCE_FORMAT or data.get("version") != 1:
        return {}
    entries = data.get("entries")
    if not isinstance(entries, dict):
        return {}
    out: dict[str, tuple[list[float], list[int]]] = {}
    for text, entry in entries.items():
        try:
            out[text] = ([float(v) for v in entry["logprobs"]], [int(v) for v in entry["n_tokens"]])
        except (KeyError, TypeError, ValueError):
            continue
    return out


def write_reference_file(path: Path, entries: Mapping[str, tuple[Sequence[float], Sequence[int]]],
                         about: Mapping[str, object]) -> None:
    """Merge ``entries`` into the reference file at ``path`` (atomic replace; a failure only logs: it is a cache)."""
    merged = read_reference_file(path)
    merged.update({text: (list(map(float, lp)), list(map(int, nt))) for text, (lp, nt) in entries.items()})
    document = {"format": REFERENCE_FORMAT, "version": 1, **about,
                "entries": {text: {"logprobs": lp, "n_tokens": nt} for text, (lp, nt) in merged.items()}}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, document, indent=1)
    except (OSError, InputError) as exc:
        log.warning("cannot write the reference-score cache %s: %s", path, exc)


def write_calibration_file(path: str | os.PathLike[str], document: Mapping[str, object]) -> None:
    """Write a calibration file (``OSError``/``InputError`` on failure: the caller asked for this file)."""
    body = {"format": CALIBRATION_FORMAT, "version": 1, **document}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, body, indent=2)


def calibration_direction(data: Mapping[str, object]) -> object:
    """The ``scoring.direction`` a calibration file was fitted under.

    Files written before the direction was recorded have no ``direction`` key and are read as
    ``direct``: that is what they were (``lpclassify calibrate`` failed on channel configs, at the
    domain prior), so they keep working with direct configs. A channel fit saved through the Python
    API in that time reads as direct too, and its channel config refuses it: refit, as the error says.
    """
    return data.get("direction", "direct")


def read_calibration_file(path: str | os.PathLike[str]) -> dict[str, object]:
    """Read and check a calibration file; ``ValueError`` says what is wrong, ``OSError`` if unreadable."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != CALIBRATION_FORMAT:
        raise ValueError(f"not an lpclassify calibration file (expected \"format\": \"{CALIBRATION_FORMAT}\")")
    if data.get("version") != 1:
        raise ValueError(f"unsupported calibration file version {data.get('version')!r}")
    if not isinstance(data.get("labels"), list):
        raise ValueError("missing 'labels' (the label names, in order)")
    if "fitted" not in data and "domain" not in data:
        raise ValueError("holds neither 'fitted' parameters nor a 'domain' prior")
    return data
