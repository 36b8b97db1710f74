"""Label sets kept out of the YAML: a text file beside the config, one label per line.

Large label sets (dozens to thousands of intents or tags) read better as a list than as YAML::

    # support intents: one per line; after ':' the completions, separated by '|'
    card not arrived: card not arrived | card never came
    refund request
    change address: change address | new address

A label without completions gets the default, " " + its name; each listed completion is the
text after the ':' stripped, with one leading space (what follows "Intent:" in a prompt). For
completions that need other whitespace, use the YAML mapping. ``labels: intents.txt`` in the
config names the file, relative to the config. Errors name the file and the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError


@dataclass(frozen=True)
class LabelLine:
    """One label as written in a labels file."""

    line: int
    name: str
    completions: tuple[str, ...] | None  # None: the default completion


def read_labels_file(path: Path, *, source: str, key: str = "labels") -> list[LabelLine]:
    """Parse a labels file; ConfigError (naming ``path:line``) for what cannot be a label."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"labels file {path} not found; give a path relative to the config file",
                          source=source, key=key) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"labels file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})",
                          source=source, key=key) from None
    except (OSError, ValueError) as exc:  # ValueError: a name no file system takes (a NUL byte)
        raise ConfigError(f"cannot read labels file {path}: {getattr(exc, 'strerror', None) or exc}",
                          source=source, key=key) from None
    labels: list[LabelLine] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, rest = line.partition(":")
        name = name.strip()
        where = f"{path}:{number}"
        if not name:
            raise ConfigError("expected a label name before ':'", source=where)
        completions = None
        if colon:
            parts = [part.strip() for part in rest.split("|")]
            if not all(parts):
                raise ConfigError(f"label {name!r}: an empty completion (expected 'name: completion | completion')",
                                  source=where)
            completions = tuple(" " + part for part in parts)
        labels.append(LabelLine(number, name, completions))
    if not labels:
        raise ConfigError(f"labels file {path} holds no labels (one per line)", source=source, key=key)
    return labels
