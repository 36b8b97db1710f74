"""One exception tree for everything a user can get wrong.

Every error the library raises on purpose derives from :class:`LpclassifyError`, so a
front end can catch that one type, print ``str(error)`` (one line that says what was
wrong and how to fix it) and exit, while anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class LpclassifyError(Exception):
    """Base class: a problem the user can fix (config, model, input)."""


class ConfigError(LpclassifyError):
    """A label-set config is invalid.

    ``source`` is the file (or ``<mapping>``), ``key`` the dotted path inside it, e.g.
    ``labels.positive.completions``; the message says what was expected.

    >>> str(ConfigError("expected a list of strings", source="s.yaml", key="labels.a.completions"))
    's.yaml: labels.a.completions: expected a list of strings'
    """

    def __init__(self, message: str, *, source: str = "<mapping>", key: str = "") -> None:
        self.message = message
        self.source = source
        self.key = key
        location = f"{source}: {key}" if key else source
        super().__init__(f"{location}: {message}")


class ModelError(LpclassifyError):
    """A model cannot be found, fetched, verified or loaded."""


class InputError(LpclassifyError):
    """An input text or input file is unusable (empty text, bad encoding, bad record...)."""


class CapacityError(LpclassifyError):
    """A label set asks more of one llama.cpp decode than it allows (too many or too long completions)."""


class MissingDependencyError(LpclassifyError):
    """An optional extra (e.g. ``lpclassify[plot]``) is needed for what was asked."""


def one_line(message: object) -> str:
    """An error message as one line (messages are printed one per line; some carry newlines)."""
    return " ".join(str(message).split("\n")).strip()
