"""Where configs come from: a YAML file, or the name of a config shipped with lpclassify.

``load_config("sentiment")`` and ``load_config("configs/sentiment.yaml")`` give the same
config, from Python and from the command line alike: a spec that is an existing file is
read; a bare name (no directory, no ``.yaml`` suffix) that is not a file names a shipped config.
"""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .schema import Config
from .validate import parse_config

# A source checkout keeps the shipped configs at the top level; a wheel has them under _data.
REPO_CONFIGS = Path(__file__).resolve().parent.parent.parent / "configs"


def shipped_config_dirs() -> list[Path]:
    dirs = []
    with contextlib.suppress(Exception):  # an unusual loader: fall back to the source tree
        packaged = Path(str(resources.files("lpclassify") / "_data" / "configs"))
        if packaged.is_dir():
            dirs.append(packaged)
    if REPO_CONFIGS.is_dir():
        dirs.append(REPO_CONFIGS)
    return dirs


def shipped_configs() -> dict[str, Path]:
    """Name -> path of every config shipped with lpclassify."""
    found: dict[str, Path] = {}
    for directory in shipped_config_dirs():
        for path in sorted(directory.glob("*.y*ml")):
            found.setdefault(path.stem, path)
    return found


def resolve_config(spec: str | Path) -> Path:
    """A config spec -> a path: an existing file, else the name of a shipped config."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    text = str(spec)
    bare = bool(text) and "/" not in text and os.sep not in text and path.suffix.lower() not in (".yaml", ".yml")
    if not bare:
        return path  # load_config says precisely what is wrong with it
    shipped = shipped_configs()
    if text in shipped:
        return shipped[text]
    close = difflib.get_close_matches(text, list(shipped), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    names = ", ".join(shipped) or "none found"
    raise ConfigError(f"no such file, and not a shipped config; {hint}(shipped configs: {names})", source=text)


def load_config(spec: str | Path | Mapping[str, Any] | Config) -> Config:
    """Load and validate a config: a YAML file path, a shipped config's name, or a parsed mapping."""
    if isinstance(spec, Config):
        return spec
    if isinstance(spec, Mapping):
        return parse_config(spec, source="<mapping>")
    path = resolve_config(spec)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found; check the path", source=source) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, expected a YAML file", source=source) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", source=source) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=source) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # _StrictLoader is a SafeLoader: no arbitrary objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(f"invalid YAML: {where}{exc.problem or exc.context}", source=source) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", source=source) from None
    except RecursionError:  # PyYAML parses nesting recursively: "[[[[..." thousands deep
        raise ConfigError("invalid YAML: nested too deeply", source=source) from None
    if data is None:
        raise ConfigError("the file is empty; expected a mapping with 'prompt' and 'labels'", source=source)
    return parse_config(data, source=source)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys instead of keeping the last one silently."""


def _construct_mapping_no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, (list, dict)):
            continue  # unhashable; reported as a wrong key type later
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_no_duplicates)


