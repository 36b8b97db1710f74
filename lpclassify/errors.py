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


class ConfigErrors(ConfigError):
    """Several problems in one config, all reported at once (``errors``, each a located
    :class:`ConfigError`); the first is also this error's own ``source``, ``key`` and ``message``.

    ``more`` counts the problems found past the reporting limit and left out.
    """

    def __init__(self, errors: list[ConfigError], *, more: int = 0) -> None:
        self.errors = list(errors)
        self.more = more
        first = self.errors[0]
        super().__init__(first.message, source=first.source, key=first.key)
        self.args = ("\n".join(self.lines()),)

    def lines(self) -> list[str]:
        """One line per problem, and a last one for those left out."""
        lines = [str(error) for error in self.errors]
        if self.more:
            lines.append(f"{self.errors[0].source}: {self.more} more problem{'s' if self.more != 1 else ''} "
                         "not shown; fix these and run again")
        return lines

    def __str__(self) -> str:
        return "\n".join(self.lines())


class ModelError(LpclassifyError):
    """A model cannot be found, fetched, verified or loaded."""


class InputError(LpclassifyError):
    """An input text or input file is unusable (empty text, bad encoding, bad record...)."""


class CapacityError(LpclassifyError):
    """A label set asks more of one llama.cpp decode than it allows (too many or too long completions)."""


class MissingDependencyError(LpclassifyError):
    """An optional extra (e.g. ``lpclassify[plot]``) is needed for what was asked."""


def error_lines(error: BaseException) -> list[str]:
    """What to print for an error, one line per problem (:class:`ConfigErrors` has several)."""
    if isinstance(error, ConfigErrors):
        return [one_line(line) for line in error.lines()]
    return [one_line(error)]


def one_line(message: object) -> str:
    """An error message as one line (messages are printed one per line; some carry newlines)."""
    return " ".join(str(message).split("\n")).strip()
