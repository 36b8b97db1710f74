"""Calibration methods by name: the one place that lists them.

Adding a method is one module (a :class:`~.base.Calibration` subclass) plus one line in
``BUILTIN`` below; config validation, the classifier, ``eval --compare`` and the CLI's
choices all read this registry. :func:`register` adds a method at run time (plug-ins, tests).
"""

from __future__ import annotations

from .base import Calibration, NoCalibration
from .fitted import Fitted
from .pmi import Pmi
from .priors import Batch, Contextual, Domain

BUILTIN: tuple[Calibration, ...] = (
    NoCalibration(),
    Contextual(),
    Domain(),
    Batch(),
    Pmi(),
    Fitted(),
)

_METHODS: dict[str, Calibration] = {method.name: method for method in BUILTIN}


def register(method: Calibration) -> Calibration:
    """Make ``method`` available as ``scoring.calibration: <method.name>``; returns it."""
    if not method.name or not method.name.isidentifier():
        raise ValueError(f"a calibration method needs an identifier as its name, got {method.name!r}")
    _METHODS[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove a method added with :func:`register` (the built-in ones stay)."""
    if name not in {method.name for method in BUILTIN}:
        _METHODS.pop(name, None)


def method_names() -> tuple[str, ...]:
    """Every method's name, built-in ones first, in registration order."""
    return tuple(_METHODS)


def get(name: str) -> Calibration:
    try:
        return _METHODS[name]
    except KeyError:
        raise ValueError(f"unknown calibration {name!r}; known: {', '.join(_METHODS)}") from None
