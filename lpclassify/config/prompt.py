"""The prompt and few-shot examples of a config: checked here, rendered by :mod:`lpclassify.prompts`.

``prompt`` is a plain template (a string), or chat messages rendered with the model's own chat
template: a mapping ``{system: ..., user: ...}`` or a list of ``{role, content}`` mappings that
ends with the user's turn. Every ``{name}`` that the config does not fill itself (``{labels}``;
``{label}`` and ``{description}`` in multi-label mode) is a field of the input record.

``examples`` is a list of records (their fields and a ``label``) or the name of a JSONL/CSV
file beside the config holding them.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError
from ..records.readers import InputFile, RecordReader, input_format_for
from .schema import MULTI_PROMPT_PLACEHOLDERS, PROMPT_PLACEHOLDERS, RESERVED_PLACEHOLDERS, Example, Message
from .templates import template_fields

CHAT_KEYS = ("system", "user")


def parse_prompt(raw: Any, *, mode: str, source: str, channel: bool = False) -> str | tuple[Message, ...]:
    """A plain template (trailing newlines dropped) or chat messages, with their placeholders checked."""
    if isinstance(raw, str):
        check_placeholders([raw], mode=mode, source=source, key="prompt", channel=channel)
        # A YAML block scalar (``|``) ends with a newline the user rarely means: the completion
        # would then start on a new line. To end a prompt with a newline, start the completions with one.
        return raw.rstrip("\n")
    messages: list[Message] = []
    if isinstance(raw, Mapping):
        for name in raw:
            if name not in CHAT_KEYS:
                hint = difflib.get_close_matches(str(name), CHAT_KEYS, n=1)
                extra = f"did you mean '{hint[0]}'?" if hint else "expected system and/or user (or a list of " \
                                                                  "{role, content} messages)"
                raise ConfigError(f"unknown key; {extra}", source=source, key=f"prompt.{name}")
        if "user" not in raw:
            raise ConfigError("missing; a chat prompt needs the user's message, where the input goes",
                              source=source, key="prompt.user")
        messages = [Message(role, _content(raw[role], source, f"prompt.{role}")) for role in CHAT_KEYS if role in raw]
    elif isinstance(raw, list) and raw:
        for i, item in enumerate(raw):
            key = f"prompt[{i}]"
            if not isinstance(item, Mapping) or set(item) != {"role", "content"}:
                raise ConfigError("expected a mapping with exactly the keys role and content", source=source, key=key)
            if not isinstance(item["role"], str) or not item["role"].strip():
                raise ConfigError("expected a role name (system, user, assistant)", source=source, key=f"{key}.role")
            messages.append(Message(item["role"], _content(item["content"], source, f"{key}.content")))
        if messages[-1].role != "user":
            raise ConfigError(f"the last message must be the user's (got {messages[-1].role!r}): the model's reply "
                              "is what gets scored", source=source, key=f"prompt[{len(raw) - 1}].role")
    else:
        raise ConfigError("expected a template string, a mapping {system, user} or a list of {role, content} "
                          "messages", source=source, key="prompt")
    check_placeholders([m.content for m in messages], mode=mode, source=source, key="prompt", channel=channel)
    return tuple(messages)


def _content(value: Any, source: str, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError("expected a string", source=source, key=key)
    return value.rstrip("\n")


def check_placeholders(templates: Sequence[str], *, mode: str, source: str, key: str, channel: bool = False) -> None:
    """Reserved placeholders only where they mean something; at least one input field.

    Channel scoring (single-label) fills ``{label}`` with each label's verbalization: see :mod:`.direction`.
    """
    allowed = MULTI_PROMPT_PLACEHOLDERS if mode == "multi" else PROMPT_PLACEHOLDERS
    if channel and mode == "single":
        allowed = (*allowed, "label")
    names = template_fields(*templates)
    for name in names:
        if name in RESERVED_PLACEHOLDERS and name not in allowed:
            hint = difflib.get_close_matches(name, allowed, n=1)
            extra = f"; did you mean {{{hint[0]}}}?" if hint else ""
            if name == "label" and mode == "single":
                extra += " (or set scoring.direction: channel, where {label} names the label before the input)"
            raise ConfigError(f"unknown placeholder {{{name}}}: {mode}-label mode fills "
                              f"{', '.join('{' + a + '}' for a in allowed)}{extra}", source=source, key=key)
    if not any(name not in RESERVED_PLACEHOLDERS for name in names):
        raise ConfigError("the template must contain {text} (or other fields of the input, such as {premise}), "
                          "where the input goes", source=source, key=key)


def parse_examples(raw: Any, *, fields: Sequence[str], labels: Sequence[str], mode: str,
                   source: str) -> tuple[Example, ...]:
    """Few-shot examples from the config (a list of records) or from a JSONL/CSV file beside it."""
    if raw is None:
        return ()
    if isinstance(raw, str):
        return _examples_file(raw, fields=fields, labels=labels, mode=mode, source=source)
    if not isinstance(raw, list):
        raise ConfigError("expected a list of records (their fields and a label) or the name of a JSONL/CSV file",
                          source=source, key="examples")
    out = []
    for i, record in enumerate(raw):
        where = f"examples[{i}]"
        if not isinstance(record, Mapping):
            raise ConfigError("expected a mapping of fields and a label", source=source, key=where)
        out.append(_example(record, fields, labels, mode, lambda message, w=where: ConfigError(
            message, source=source, key=w), where))
    return tuple(out)


def _examples_file(name: str, *, fields: Sequence[str], labels: Sequence[str], mode: str,
                   source: str) -> tuple[Example, ...]:
    base = Path(source).parent if source != "<mapping>" else Path.cwd()
    path = base / name
    try:
        fmt = input_format_for(path)
        out = []
        with InputFile(path) as infile:
            reader = RecordReader(infile.stream, fmt, source=str(path), fields=fields)
            for record in reader:
                where = f"{path}:{record.line}"
                out.append(_example(record.fields, fields, labels, mode,
                                    lambda message, w=where: ConfigError(message, source=w), where))
    except InputError as exc:
        raise ConfigError(f"examples file: {exc}", source=source, key="examples") from None
    if not out:
        raise ConfigError(f"examples file {path} holds no examples", source=source, key="examples")
    return tuple(out)


def _example(record: Mapping[str, Any], fields: Sequence[str], labels: Sequence[str], mode: str,
             error: Any, where: str) -> Example:
    values = []
    for name in fields:
        if name not in record:
            hint = difflib.get_close_matches(name, [str(k) for k in record if k != "label"], n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            raise error(f"no field {name!r}, which the prompt uses (its fields: "
                        f"{', '.join(map(repr, record)) or 'none'}){extra}")
        if not isinstance(record[name], str):
            raise error(f"field {name!r} must be a string")
        values.append((name, record[name]))
    label = record.get("label")
    given = label if isinstance(label, list) and mode == "multi" else [label]
    if label is None or not all(isinstance(item, str) for item in given):
        raise error("expected a 'label' naming one of the labels" + (" (or a list of them)" if mode == "multi" else ""))
    for item in given:
        if item not in labels:
            hint = difflib.get_close_matches(item, labels, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else f" (labels: {', '.join(labels)})"
            raise error(f"label {item!r} is not one of the config's labels{extra}")
    return Example(tuple(values), tuple(given), where)
