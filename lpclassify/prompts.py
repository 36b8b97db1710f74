"""Prompts: a config's template(s), examples and an input's fields -> the :class:`Prompt` each completion follows.

A config's prompt becomes a :class:`Frame` once per classifier: its text with holes for the
input's fields. Plain templates render ``{field}`` placeholders (``{{``/``}}`` are literal
braces); chat prompts are rendered once with the model's own chat template, with markers where
the fields go, and cut at the markers. Few-shot examples are rendered into the frame before the
input (through the same template, each followed by its label's first completion, joined by
``example_separator``; in a chat, as earlier user/assistant turns), so they sit in the pinned
prefix the engine decodes once.

What the config wrote (and the chat template added) is template text, where special-token
strings are special tokens; the input's fields and the examples' values are data, never
special (:mod:`lpclassify.tokenization`).

>>> from lpclassify.config import load_config
>>> config = load_config({"prompt": "P: {premise}\\nH: {hypothesis}\\nLabel:", "labels": ["yes", "no"],
...                       "examples": [{"premise": "A", "hypothesis": "B", "label": "no"}]})
>>> print(str(Prompter(config).frames[0].fill({"premise": "C", "hypothesis": "D"})))
P: A
H: B
Label: no
<BLANKLINE>
P: C
H: D
Label:
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .backends.base import ChatTemplate
from .chat import render_chat
from .config import Config, Label
from .config.direction import verbalization
from .config.templates import Field, parse_template
from .errors import InputError, ModelError
from .inputs import Input, encoding_problem
from .tokenization import Prompt, Segment

MARK = "\ue000{}\ue001"  # private-use characters: where a field goes in a rendered chat
MARKS = re.compile("\ue000(\\d+)\ue001")

Part = Segment | Field


@dataclass(frozen=True)
class Frame:
    """A rendered prompt with holes: template text, data (examples' values) and the input's fields."""

    parts: tuple[Part, ...]
    exact_end: bool = False  # chat: the generation prompt's trailing newline is kept

    def fill(self, values: Mapping[str, str]) -> Prompt:
        return Prompt(tuple(p if isinstance(p, Segment) else Segment(values[p.name]) for p in self.parts),
                      self.exact_end)

    def split(self, values: Mapping[str, str], fields: Sequence[str]) -> tuple[Prompt, Prompt]:
        """Channel scoring: the prompt filled from ``values``, cut where the first of ``fields`` after
        ``{label}`` starts, and the rest up to the end of the last of them (what is scored); template
        text after it is dropped. Fields before ``{label}`` (a pair's premise) are context, not scored."""
        label = next((i for i, part in enumerate(self.parts) if isinstance(part, Field) and part.name == "label"), -1)
        holes = [i for i, part in enumerate(self.parts)
                 if isinstance(part, Field) and part.name in fields and i > label]
        filled = self.fill(values).segments
        return (Prompt(filled[:holes[0]], self.exact_end), Prompt(filled[holes[0]:holes[-1] + 1]))

    def prefix(self) -> Prompt:
        """Everything before the first field: the same for every input (the engine keeps it decoded)."""
        head = []
        for part in self.parts:
            if isinstance(part, Field):
                break
            head.append(part)
        return Prompt(tuple(head), self.exact_end)

    def display(self) -> str:
        """The frame as text, fields shown as ``{name}``."""
        return "".join(p.text if isinstance(p, Segment) else "{" + p.name + "}" for p in self.parts)

    def template_text(self) -> list[str]:
        return [p.text for p in self.parts if isinstance(p, Segment) and p.template]


def describe_labels(labels: Sequence[Label]) -> str:
    """The ``{labels}`` placeholder: one label per line, with its description when it has one."""
    return "\n".join(f"- {label.name}: {label.description}" if label.description else f"- {label.name}"
                     for label in labels)


class Prompter:
    """A config's frames (one, or one per label in multi-label mode) and its inputs' fields."""

    def __init__(self, config: Config, chat: ChatTemplate | None = None, *, model: str = "the model") -> None:
        self.config = config
        self.fields = config.fields
        if config.chat and chat is None:
            raise ModelError(f"{model} has no chat template (no tokenizer.chat_template in its GGUF metadata), so "
                             "it cannot render a chat prompt; use an instruct/chat model, or write the prompt as a "
                             "plain template string")
        if config.decision.score_mode == "single":
            # channel scoring: {label} stays a hole, filled with each label's verbalization in turn
            reserved = [{"labels": describe_labels(config.labels)}]
        else:
            reserved = [{"label": label.name, "description": label.description or label.name}
                        for label in config.labels]
        self.frames = tuple(self._frame(values, i, chat) for i, values in enumerate(reserved))

    def _answer(self, example_labels: Sequence[str], label: int) -> str:
        """What follows an example: its label's first completion, or (multi-label) the first yes or no;
        in channel scoring, what its ``{label}`` becomes."""
        config = self.config
        if config.scoring.channel:
            first = next(lab for lab in config.labels if lab.name == example_labels[0]).completions[0]
            return verbalization(first)
        if config.decision.score_mode == "single":
            return next(lab for lab in config.labels if lab.name == example_labels[0]).completions[0]
        multi = config.decision.multi
        return multi.yes[0] if config.labels[label].name in example_labels else multi.no[0]

    def _frame(self, reserved: dict[str, str], label: int, chat: ChatTemplate | None) -> Frame:
        config = self.config
        if chat is None:
            assert isinstance(config.prompt, str)
            parts: list[Part] = []
            for example in config.examples:
                if config.scoring.channel:  # the label first, then the example: as the input will be scored
                    # a rerank's scorer of a few labels gets each demonstration's answer written in
                    answer = example.values.get("label") or self._answer(example.labels, 0)
                    named = {**example.values, "label": answer}
                    parts += _parts(config.prompt, reserved, named)
                    parts.append(Segment(config.example_separator, True))
                    continue
                parts += _parts(config.prompt, reserved, example.values)
                parts += [Segment(self._answer(example.labels, label)), Segment(config.example_separator, True)]
            return Frame(_merge([*parts, *_parts(config.prompt, reserved)]))
        assert not isinstance(config.prompt, str)
        holes: list[Part] = []  # what each marker stands for

        def content(template: str, data: Mapping[str, str] | None = None) -> str:
            out = []
            for part in _parts(template, reserved, data):
                if isinstance(part, Segment) and part.template:
                    out.append(part.text)
                else:
                    holes.append(part)
                    out.append(MARK.format(len(holes) - 1))
            return "".join(out)

        messages = [{"role": m.role, "content": content(m.content)} for m in config.prompt]
        turns = []
        for example in config.examples:
            last = config.prompt[-1].content
            turns.append({"role": "user", "content": content(last, example.values)})
            holes.append(Segment(self._answer(example.labels, label)))
            turns.append({"role": "assistant", "content": MARK.format(len(holes) - 1)})
        rendered = render_chat(chat, [*messages[:-1], *turns, messages[-1]])
        parts = []
        last_end = 0
        for match in MARKS.finditer(rendered):
            parts += [Segment(rendered[last_end:match.start()], True), holes[int(match.group(1))]]
            last_end = match.end()
        parts.append(Segment(rendered[last_end:], True))
        missing = [name for name in self.fields if Field(name) not in parts]
        if missing:
            raise ModelError(f"the chat template of {chat.model} leaves out the field(s) {', '.join(missing)} of "
                             "the prompt's messages (does it drop the system message?); put them in the user message")
        return Frame(_merge(parts), exact_end=True)

    # ------------------------------------------------------------------ inputs

    def values(self, value: Input) -> dict[str, str]:
        """The prompt's fields from an input; InputError (with a did-you-mean) for a missing one."""
        if isinstance(value, str):
            if len(self.fields) == 1:
                return {self.fields[0]: _encodable(value)}
            raise InputError(f"the prompt uses the fields {', '.join(self.fields)}: give records with them "
                             "(JSONL or CSV; in Python a mapping such as {" + ", ".join(
                                 f"{name!r}: ..." for name in self.fields) + "})")
        if not isinstance(value, Mapping):
            raise InputError(f"expected a string or a mapping of fields, got {type(value).__name__}")
        out = {}
        for name in self.fields:
            if name not in value:
                keys = [str(k) for k in value]
                hint = [k for k in keys if k.lower() == name.lower()] or difflib.get_close_matches(name, keys, n=1)
                extra = f"; did you mean {hint[0]!r}?" if hint else ""
                raise InputError(f"no field {name!r} in the input (its fields: {', '.join(map(repr, value)) or 'none'})"
                                 f", which the prompt uses as {{{name}}}{extra}")
            if not isinstance(value[name], str):
                raise InputError(f"field {name!r} is {type(value[name]).__name__}, expected a string")
            out[name] = _encodable(value[name])
        return out

    def fill_all(self, text: str) -> dict[str, str]:
        """Every field set to ``text``: what a content-free input ("N/A", "") means for a record."""
        return dict.fromkeys(self.fields, text)

    def field_to_shorten(self, values: Mapping[str, str]) -> str:
        """The field a long input is cut in: ``runtime.shorten_field``, else the longest."""
        return self.config.runtime.shorten_field or max(self.fields, key=lambda name: len(values[name]))


def _encodable(text: str) -> str:
    """``text``, or an InputError when it cannot be encoded for the model (undecodable bytes from argv)."""
    problem = encoding_problem(text)
    if problem is not None:
        raise InputError(f"the text is {problem}")
    return text


def _parts(template: str, reserved: Mapping[str, str], data: Mapping[str, str] | None = None) -> list[Part]:
    """A template's parts: its text and the config's placeholders as template text, fields as holes
    (or, with ``data``, as the example's values)."""
    out: list[Part] = []
    for part in parse_template(template):
        if isinstance(part, str):
            out.append(Segment(part, True))
        elif part.name in reserved:
            out.append(Segment(reserved[part.name], True))
        elif data is not None:
            out.append(Segment(data[part.name]))
        else:
            out.append(part)
    return out


def _merge(parts: Sequence[Part]) -> tuple[Part, ...]:
    """Adjacent segments of the same kind as one; empty ones dropped."""
    out: list[Part] = []
    for part in parts:
        if isinstance(part, Segment):
            if not part.text:
                continue
            if out and isinstance(out[-1], Segment) and out[-1].template == part.template:
                out[-1] = Segment(out[-1].text + part.text, part.template)
                continue
        out.append(part)
    return tuple(out)
