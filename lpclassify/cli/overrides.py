"""``--calibration METHOD`` and ``--set KEY=VALUE``: change a config's settings for one run.

An override is applied to the config as a document (its dotted key set to the YAML value) and
the document validated again, so an override gets the config file's own checks and messages:
``--set decision.threshold=1.5`` fails as ``decision.threshold: 1.5`` in the file would.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, InputError, error_lines

if TYPE_CHECKING:
    from ..config import Config


def add_override_options(parser: argparse.ArgumentParser) -> None:
    from ..calibration import method_names

    group = parser.add_argument_group("config overrides (for this run; the file is not changed)")
    group.add_argument("--calibration", choices=method_names(), help="override scoring.calibration")
    group.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override any setting by its dotted key, the value read as YAML "
                            "(--set decision.threshold=0.7 --set runtime.long_inputs=chunk); may be repeated")


def apply_overrides(config: Config, args: argparse.Namespace) -> Config:
    """``config`` with ``--calibration`` and every ``--set`` applied, checked as the config file is."""
    settings = [f"scoring.calibration={args.calibration}"] if getattr(args, "calibration", None) else []
    settings += getattr(args, "set", None) or []
    if not settings:
        return config
    import yaml

    from ..config import parse_config
    from ..config.dump import config_mapping

    document = config_mapping(config)
    for setting in settings:
        key, equals, raw = setting.partition("=")
        parts = key.strip().split(".")
        if not equals or not all(parts):
            raise InputError(f"--set {setting!r}: expected KEY=VALUE with a dotted key, e.g. "
                             "--set decision.threshold=0.7")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw  # not YAML on its own (a stray colon, say): the text as it is
        _set(document, parts, value, setting)
    try:
        return parse_config(document, source=config.source)
    except ConfigError as exc:
        raise InputError(f"with {' '.join(_shown(settings))}: " + "; ".join(error_lines(exc))) from None


def _set(document: dict[str, Any], parts: list[str], value: Any, setting: str) -> None:
    node = document
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise InputError(f"--set {setting!r}: {'.'.join(parts[:depth + 1])} is not a section of settings")
        node = child
    node[parts[-1]] = value


def _shown(settings: list[str]) -> list[str]:
    return [f"--set {setting}" for setting in settings]
