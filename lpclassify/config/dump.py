"""A :class:`~.schema.Config` back to YAML: what ``tune`` (and ``calibrate --write-config``) write.

Only settings that differ from their defaults are written, so the file reads like a hand-written
one; the result loads back to the same config (``load_config(path) == config`` up to ``source``).
A header of ``#`` comments may say where the file came from.
"""

from __future__ import annotations

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
    out["scoring"] = scoring
    d = config.decision
    decision: dict[str, Any] = {"mode": d.mode, "threshold": d.threshold, "top_k": d.top_k}
    if d.multi != MultiLabel() or (d.mode == "multi" and d.multi != Decision().multi):
        decision["multi"] = {"yes": list(d.multi.yes), "no": list(d.multi.no)}
    out["decision"] = decision
    runtime = {f.name: getattr(config.runtime, f.name) for f in fields(Runtime)
               if getattr(config.runtime, f.name) != getattr(Runtime(), f.name)}
    if runtime:
        out["runtime"] = runtime
    if config.examples:  # written inline, even where the config read them from a file
        out["examples"] = [{**example.values, "label": list(example.labels) if config.decision.mode == "multi"
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


def config_yaml(config: Config, header: str = "") -> str:
    """YAML text of ``config`` with ``header`` (lines, without ``#``) as a comment on top."""
    body = yaml.dump(config_mapping(config), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return comment + ("\n" if comment else "") + body
