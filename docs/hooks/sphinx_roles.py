"""A griffe extension: Sphinx roles in docstrings become inline code on the API pages.

The docstrings use reST roles (``:class:`~lpclassify.errors.ConfigError```), which read well in
``help()`` and in the source but which mkdocstrings would print as literal text. Each role is
rewritten at build time to inline code with the name as Sphinx would show it (``~`` keeps the
last component), so the source stays as it is and new docstrings need no special care. The
``# doctest: +SKIP`` markers of examples are dropped from the page too.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension

DOCTEST_SKIP = re.compile(r"[ \t]*# doctest: \+SKIP")  # for the doctest runner, noise on a page
ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):`(~?)([^`<]*?)(?:\s*<([^>]*)>)?`")


def plain(match: re.Match[str]) -> str:
    tilde, text, _target = match.groups()
    text = text.strip()
    if tilde:
        text = text.rsplit(".", 1)[-1]
    return f"`{text.lstrip('.')}`"


def convert(docstring: str) -> str:
    """``:class:`~a.b.C``` -> ```C```, ``:func:`a.f``` -> ```a.f```, ``:mod:`.schema``` -> ```schema```."""
    return DOCTEST_SKIP.sub("", ROLE.sub(plain, docstring))


class SphinxRoles(Extension):
    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
