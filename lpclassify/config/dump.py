"""A :class:`~.schema.Config` back to YAML: what ``tune`` (and ``calibrate --write-config``) write.

Only settings that differ from their defaults are written, so the file reads like a hand-written
one; the result loads back to the same config (``load_config(path) == config`` up to ``source``).
A header of ``#`` comments may say where the file came from.
"""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Any

import yaml

from .schema import (
    DEFAULT_CONTENT_FREE,
    DEFAULT_EXAMPLE_SEPARATOR,
    Config,
    Decision,
    MultiLabel,
    PromptTemplate,
    Runtime,
)


def prompt_data(prompt: PromptTemplate) -> str | list[dict[str, str]]:
    """A prompt as the config file writes it: the template, or chat messages as ``{role, content}`` mappings."""
    return prompt if isinstance(prompt, str) else [{"role": m.role, "content": m.content} for m in prompt]


def config_mapping(config: Config) -> dict[str, Any]:
    """The config as a plain mapping, in the order a person would write it."""
    out: dict[str, Any] = {"name": config.name}
    if config.description:
        out["description"] = config.description
    out["model"] = config.model
    out["prompt"] = prompt_data(config.prompt)
    labels: dict[str, Any] = {}
    for label in config.labels:
        entry: dict[str, Any] = {"completions": list(label.completions)}
        if label.description:
            entry["description"] = label.description
        if label.threshold is not None:
            entry["threshold"] = label.threshold
        if label.bias:
            entry["bias"] = round(float(label.bias), 6)
        labels[label.name] = entry
    out["labels"] = labels
    s = config.scoring
    scoring: dict[str, Any] = {"normalize": s.normalize, "aggregate": s.aggregate, "calibration": s.calibration}
    if s.direction != "direct":
        scoring["direction"] = s.direction
    if s.temperature != 1.0:
        scoring["temperature"] = round(float(s.temperature), 6)
    if s.content_free != DEFAULT_CONTENT_FREE:
        scoring["content_free"] = list(s.content_free)
    if s.calibration_file:
        scoring["calibration_file"] = s.calibration_file
    if s.search != "exhaustive":
        scoring["search"] = s.search
    if s.tolerance is not None:
        scoring["tolerance"] = s.tolerance
    if s.rerank is not None:
        scoring["rerank"] = {"top": s.rerank.top, "weight": s.rerank.weight}
    out["scoring"] = scoring
    d = config.decision
    decision: dict[str, Any] = {"mode": d.mode, "threshold": d.threshold, "top_k": d.top_k}
    if d.multi.scoring == "shared":
        decision["multi"] = {"scoring": "shared", **({"none": d.multi.none} if d.multi.none else {})}
    elif d.multi != MultiLabel() or (d.mode == "multi" and d.multi != Decision().multi):
        decision["multi"] = {"yes": list(d.multi.yes), "no": list(d.multi.no)}
    out["decision"] = decision
    runtime = {f.name: getattr(config.runtime, f.name) for f in fields(Runtime)
               if getattr(config.runtime, f.name) != getattr(Runtime(), f.name)}
    if runtime:
        out["runtime"] = runtime
    if config.examples:  # written inline, even where the config read them from a file
        out["examples"] = [{**example.values, "label": list(example.labels) if config.decision.score_mode == "multi"
                            else example.labels[0]} for example in config.examples]
    if config.example_separator != DEFAULT_EXAMPLE_SEPARATOR:
        out["example_separator"] = config.example_separator
    if config.search.prompts or config.search.completions:
        search: dict[str, Any] = {}
        if config.search.prompts:
            search["prompts"] = list(config.search.prompts)
        if config.search.completions:
            search["completions"] = {name: list(found) for name, found in config.search.completions}
        out["search"] = search
    return out


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (prompts) as ``|`` blocks, as people write them."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


def _represent_list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.SequenceNode:
    flat = all(isinstance(item, (str, int, float)) and "\n" not in str(item) for item in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flat)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(list, _represent_list)


def config_yaml(config: Config, header: str = "", *, comments_from: str | None = None) -> str:
    """YAML text of ``config`` with ``header`` (lines, without ``#``) as a comment on top.

    ``comments_from``, the text of the config file it was made from, lends its comments: its
    opening comment block (after ``header``), the comments above each key still written, and a
    key's end-of-line comment where that key's value is unchanged (a comment on a changed value
    would describe the old one).
    """
    body = yaml.dump(config_mapping(config), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    if comments_from is not None:
        opening, body = _carry_comments(comments_from, body)
        if opening:
            comment += ("#\n" if comment else "") + opening
    return comment + ("\n" if comment else "") + body


_KEY = re.compile(r"""^(?P<indent> *)(?P<key>"[^"]*"|'[^']*'|[^\s#'"\-][^:#]*?):(?:\s+(?P<rest>.*))?$""")


def _key_lines(text: str) -> list[tuple[int, tuple[str, ...], str]]:
    """``(line index, dotted path, what follows the colon)`` of every block-mapping key line."""
    found: list[tuple[int, tuple[str, ...], str]] = []
    stack: list[tuple[int, str]] = []  # (indent, key) of the mappings the line is in
    block_indent: int | None = None  # inside a | or > block scalar: lines indented more are its text
    for index, line in enumerate(text.splitlines()):
        indent = len(line) - len(line.lstrip(" "))
        if block_indent is not None:
            if not line.strip() or indent > block_indent:
                continue
            block_indent = None
        match = _KEY.match(line)
        if match is None:
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = match["key"].strip()
        if key[:1] in "'\"":
            key = key[1:-1]
        stack.append((indent, key))
        rest = match["rest"] or ""
        found.append((index, tuple(name for _, name in stack), rest))
        if _split_comment(rest)[0].strip()[:1] in ("|", ">"):
            block_indent = indent
    return found


def _split_comment(rest: str) -> tuple[str, str]:
    """A value's text and its end-of-line comment (``#`` after a space, outside quotes)."""
    quote = ""
    for i, char in enumerate(rest):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or rest[i - 1] in " \t"):
            return rest[:i].rstrip(), rest[i:]
    return rest, ""


def _same_value(a: str, b: str) -> bool:
    if a.strip()[:1] in ("", "|", ">") or b.strip()[:1] in ("", "|", ">"):
        return False  # a section or a block: its contents are on other lines
    try:
        return bool(yaml.safe_load(a) == yaml.safe_load(b))
    except yaml.YAMLError:
        return False


def _carry_comments(source: str, body: str) -> tuple[str, str]:
    """``source``'s opening comment block, and ``body`` with the comments of ``source``'s keys."""
    lines = source.splitlines()
    keys = _key_lines(source)
    first_key = keys[0][0] if keys else len(lines)
    opening = "".join(line.rstrip() + "\n" for line in lines[:first_key] if line.lstrip().startswith("#"))
    above: dict[tuple[str, ...], list[str]] = {}
    inline: dict[tuple[str, ...], tuple[str, str]] = {}
    for index, path, rest in keys:
        block = []
        j = index - 1
        while j >= first_key and lines[j].lstrip().startswith("#"):
            block.insert(0, lines[j].strip())
            j -= 1
        if block:
            above[path] = block
        value, comment = _split_comment(rest)
        if comment:
            inline[path] = (value, comment)
    out = body.splitlines()
    for index, path, rest in reversed(_key_lines(body)):
        line = out[index]
        if path in inline and _same_value(_split_comment(rest)[0], inline[path][0]):
            out[index] = f"{line}  {inline[path][1]}"
        if path in above:
            indent = " " * (len(line) - len(line.lstrip(" ")))
            out[index:index] = [indent + comment for comment in above[path]]
    return opening, "".join(line + "\n" for line in out)
