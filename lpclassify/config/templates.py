"""The template mini-language: ``{name}`` is a placeholder, ``{{`` and ``}}`` are literal braces.

Any other brace is literal too, so a template may show JSON without escaping every brace;
``{{text}}`` is the way to write a literal ``{text}``.

>>> parse_template("Q: {question}\\nA JSON answer {{\\"a\\": 1}}:")
('Q: ', Field(name='question'), '\\nA JSON answer {"a": 1}:')
>>> template_fields("{premise} / {hypothesis} / {premise}")
('premise', 'hypothesis')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Field:
    """A placeholder: the value named ``name`` goes here."""

    name: str


def parse_template(template: str) -> tuple[str | Field, ...]:
    """Literal text and placeholders, in order; adjacent literal text is one string."""
    parts: list[str | Field] = []
    literal: list[str] = []
    last = 0
    for match in TOKEN.finditer(template):
        literal.append(template[last:match.start()])
        last = match.end()
        if match.group(1) is None:  # {{ or }}
            literal.append(match.group(0)[0])
            continue
        if "".join(literal):
            parts.append("".join(literal))
        literal = []
        parts.append(Field(match.group(1)))
    literal.append(template[last:])
    if "".join(literal):
        parts.append("".join(literal))
    return tuple(parts)


def template_fields(*templates: str) -> tuple[str, ...]:
    """Every placeholder name of ``templates``, first use first, each once."""
    names = (part.name for template in templates for part in parse_template(template) if isinstance(part, Field))
    return tuple(dict.fromkeys(names))
