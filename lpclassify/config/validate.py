"""A parsed config document -> :class:`~.schema.Config`, checked key by key.

Every problem is a :class:`~lpclassify.errors.ConfigError` naming the file, the dotted key
and what was expected. Unknown keys are errors, not silently ignored: a misspelt option
that does nothing is the worst kind of bug in a config file. Every problem is reported at
once (up to :data:`MAX_ERRORS`, as :class:`~lpclassify.errors.ConfigErrors` when there are
several): a bad value is noted and its default used, so that checking goes on.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from ..calibration.registry import method_names
from ..errors import ConfigError, ConfigErrors
from .direction import check_direction, parse_rerank
from .labels_file import read_labels_file
from .prompt import check_placeholders, parse_examples, parse_prompt
from .schema import (
    AGGREGATIONS,
    DEFAULT_CONTENT_FREE,
    DEFAULT_EXAMPLE_SEPARATOR,
    DEFAULT_MULTI_PROMPT,
    DIRECTIONS,
    EMPTY_TEXT_POLICIES,
    LONG_INPUT_POLICIES,
    MODES,
    MULTI_SCORINGS,
    NORMALIZATIONS,
    SEARCHES,
    TRUNCATE_SIDES,
    Config,
    Decision,
    Label,
    MultiLabel,
    Runtime,
    Scoring,
    Search,
)
from .search import parse_search

MAX_ERRORS = 20  # problems reported at once; past that, the count of those left out
T = TypeVar("T")


class _Problems:
    """The problems found in one config so far."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def add(self, error: ConfigError) -> None:
        if all(str(error) != str(seen) for seen in self.errors):
            self.errors.append(error)

    def attempt(self, read: Callable[[], T], fallback: T) -> T:
        """``read()``, or, when it raises a ConfigError, ``fallback`` with the error noted."""
        try:
            return read()
        except ConfigErrors as exc:
            for error in exc.errors:
                self.add(error)
        except ConfigError as exc:
            self.add(exc)
        return fallback

    def raise_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ConfigErrors(self.errors[:MAX_ERRORS], more=max(len(self.errors) - MAX_ERRORS, 0))


def _noted(method: Callable[..., T]) -> Callable[..., T]:
    """A reader's getter that notes a bad value in the reader's problems and returns its default."""
    signature = inspect.signature(method)

    @functools.wraps(method)
    def read(self: _Reader, *args: Any, **kwargs: Any) -> T:
        default = signature.bind(self, *args, **kwargs).arguments.get("default")
        return self.problems.attempt(lambda: method(self, *args, **kwargs), default)

    return read


class _Reader:
    """Walks one mapping, checking keys and types, and remembers where it is for messages.

    An unknown key and a bad value (the getters') are noted in ``problems``, and the value's
    default used; a mapping that is not one raises.
    """

    def __init__(self, data: Any, source: str, key: str, allowed: tuple[str, ...], problems: _Problems) -> None:
        self.source = source
        self.key = key
        self.problems = problems
        if not isinstance(data, Mapping):
            raise self.error(f"expected a mapping, got {_type_name(data)}")
        self.data = data
        for name in data:
            if not isinstance(name, str):
                problems.add(self.error(f"keys must be strings, got {_type_name(name)} {name!r}"))
            elif name not in allowed:
                hint = difflib.get_close_matches(name, allowed, n=1)
                suggestion = f"did you mean '{hint[0]}'?" if hint else f"expected one of: {', '.join(allowed)}"
                problems.add(ConfigError(f"unknown key; {suggestion}", source=source, key=self.child(name)))

    def child(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def error(self, message: str, name: str | None = None) -> ConfigError:
        return ConfigError(message, source=self.source, key=self.child(name) if name else self.key)

    def has(self, name: str) -> bool:
        return name in self.data

    @_noted
    def str(self, name: str, default: str | None = None, *, required: bool = False) -> str | None:
        if name not in self.data:
            if required:
                raise self.error("missing; expected a string", name)
            return default
        value = self.data[name]
        if not isinstance(value, str):
            raise self.error(f"expected a string, got {_type_name(value)}", name)
        return value

    @_noted
    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.str(name, default)
        assert value is not None
        if value not in choices:
            hint = difflib.get_close_matches(value, choices, n=1)
            extra = f"; did you mean '{hint[0]}'?" if hint else ""
            raise self.error(f"expected one of {', '.join(choices)}, got {value!r}{extra}", name)
        return value

    @_noted
    def number(self, name: str, default: float, *, low: float, high: float) -> float:
        value = self.data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(f"expected a number between {low:g} and {high:g}, got {_type_name(value)}", name)
        if not low <= value <= high:
            raise self.error(f"expected a number between {low:g} and {high:g}, got {value!r}", name)
        return float(value)

    @_noted
    def integer(self, name: str, default: int | None, *, low: int, high: int | None = None) -> int | None:
        value = self.data.get(name, default)
        if value is None and default is None:
            return None
        expected = f"an integer >= {low}" + (f" and <= {high}" if high is not None else "")
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"expected {expected}, got {_type_name(value)}", name)
        if value < low or (high is not None and value > high):
            raise self.error(f"expected {expected}, got {value}", name)
        return value

    @_noted
    def strings(self, name: str, default: tuple[str, ...], *, allow_empty_items: bool = False) -> tuple[str, ...]:
        if name not in self.data:
            return default
        value = self.data[name]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.error("expected a list of strings", name)
        if not value:
            raise self.error("expected a non-empty list of strings", name)
        if not allow_empty_items and any(item == "" for item in value):
            raise self.error("empty strings are not allowed here", name)
        if len(set(value)) != len(value):
            duplicate = next(item for item in value if value.count(item) > 1)
            raise self.error(f"{duplicate!r} is listed twice", name)
        return tuple(value)


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)


def parse_config(data: Any, *, source: str = "<mapping>") -> Config:
    """Validate an already-parsed document and build the frozen :class:`Config`.

    Raises the one :class:`ConfigError` found, or :class:`ConfigErrors` with every one.
    """
    problems = _Problems()
    top = _Reader(data, source, "", ("name", "description", "model", "prompt", "labels", "scoring",
                                     "decision", "runtime", "search", "examples", "example_separator"), problems)
    attempt = problems.attempt
    default_name = Path(source).stem if source != "<mapping>" else "classifier"
    name = top.str("name", default_name) or default_name
    labels = attempt(lambda: _parse_labels(top, source), None)
    scoring = attempt(lambda: _parse_scoring(top, source), Scoring())
    decision = attempt(lambda: _parse_decision(top, source, labels), Decision())
    score_mode = decision.score_mode  # multi-label with one shared question is scored as single-label
    if labels is not None and score_mode == "single" and len(labels) == 1:
        problems.add(top.error(f"a single-label config with one label ({labels[0].name!r}) always answers it "
                               "with p = 1; add labels, or ask a yes/no question with decision.mode: multi", "labels"))
    # Multi-label mode asks one question per label, so its template may name the label.
    prompt = None
    if not top.has("prompt") and score_mode == "single":
        problems.add(top.error("missing; expected a template string (or chat messages)", "prompt"))
    else:
        prompt = attempt(lambda: parse_prompt(top.data.get("prompt", DEFAULT_MULTI_PROMPT), mode=score_mode,
                                              source=source, channel=scoring.channel), None)
    runtime = attempt(lambda: _parse_runtime(top, source), Runtime())
    separator = top.str("example_separator", DEFAULT_EXAMPLE_SEPARATOR) or DEFAULT_EXAMPLE_SEPARATOR
    model = top.str("model", "default") or ""
    if not model.strip():
        problems.add(top.error("expected a model name or a path to a .gguf file, got an empty string", "model"))
    if labels is None or prompt is None:  # what follows needs both
        problems.raise_any()
    assert labels is not None and prompt is not None
    probe = Config(name=name, prompt=prompt, labels=labels)
    if runtime.shorten_field is not None and runtime.shorten_field not in probe.fields:
        problems.add(top.error(f"{runtime.shorten_field!r} is not a field of the prompt (its fields: "
                               f"{', '.join(probe.fields)})", "runtime.shorten_field"))
    examples = attempt(lambda: parse_examples(top.data.get("examples"), fields=probe.fields,
                                              labels=probe.label_names, mode=score_mode, source=source), ())
    search = attempt(lambda: parse_search(
        top.data.get("search"), source=source, label_names=[label.name for label in labels],
        check_template=lambda template, key: search_template(template, score_mode, source, key, scoring.channel)),
        Search())
    problems.raise_any()
    config = Config(name=name, prompt=prompt, labels=labels, model=model, description=top.str("description"),
                    scoring=scoring, decision=decision, runtime=runtime, search=search, source=source,
                    examples=examples, example_separator=separator)
    check_direction(config)
    return config


def search_template(template: str, mode: str, source: str, key: str, channel: bool = False) -> str:
    """One of ``search.prompts``: a plain template, checked and trimmed as the config's own prompt is."""
    check_placeholders([template], mode=mode, source=source, key=key, channel=channel)
    return template.rstrip("\n")


def _parse_labels(top: _Reader, source: str) -> tuple[Label, ...]:
    if not top.has("labels"):
        raise top.error("missing; expected a mapping of label names to their settings", "labels")
    raw = top.data["labels"]
    lines: dict[str, str] = {}  # label -> "file:line", for labels read from a labels file
    if isinstance(raw, str):  # a labels file beside the config
        base = Path(source).parent if source != "<mapping>" else Path.cwd()
        entries = read_labels_file(base / raw, source=source)
        first_line: dict[str, int] = {}
        for entry in entries:
            if entry.name in first_line:
                raise ConfigError(f"label {entry.name!r} is listed twice (first at line {first_line[entry.name]})",
                                  source=f"{base / raw}:{entry.line}")
            first_line[entry.name] = entry.line
        lines = {entry.name: f"{base / raw}:{entry.line}" for entry in entries}
        raw = {entry.name: {"completions": list(entry.completions)} if entry.completions else None
               for entry in entries}
    if isinstance(raw, list):  # shorthand: a list of names, completions default to " " + name
        if not all(isinstance(item, str) for item in raw):
            raise top.error("expected a mapping of labels, or a list of label names (strings)", "labels")
        if len(set(raw)) != len(raw):
            duplicate = next(item for item in raw if raw.count(item) > 1)
            raise top.error(f"duplicate label {duplicate!r}", "labels")
        raw = {item: None for item in raw}
    if not isinstance(raw, Mapping):
        raise top.error(f"expected a mapping of label names to their settings, got {_type_name(raw)}", "labels")
    if len(raw) < 1:
        raise top.error("expected at least one label", "labels")
    labels: list[Label] = []
    owner_of: dict[str, str] = {}
    for label_name, settings in raw.items():
        if not isinstance(label_name, str):
            raise top.error(
                f"label names must be strings, got {_type_name(label_name)} {label_name!r}; "
                f"quote it in YAML, e.g. '{str(label_name).lower()}':", "labels")
        if not label_name.strip():
            raise top.error("label names must not be empty", "labels")
        key = f"labels.{label_name}"
        reader = _Reader(settings if settings is not None else {}, lines.get(label_name, source), key,
                         ("completions", "description", "threshold", "bias"), top.problems)
        completions = reader.strings("completions", (" " + label_name,))
        for completion in completions:
            if not completion.strip():
                raise reader.error("a completion must contain more than whitespace", "completions")
            if completion in owner_of:
                raise reader.error(
                    f"{completion!r} is also a completion of label '{owner_of[completion]}'; "
                    "a completion must belong to one label", "completions")
            owner_of[completion] = label_name
        threshold = reader.number("threshold", 0.5, low=0.0, high=1.0) if reader.has("threshold") else None
        bias = reader.number("bias", 0.0, low=-100.0, high=100.0)
        labels.append(Label(label_name, completions, reader.str("description"), threshold, bias))
    return tuple(labels)


def _parse_scoring(top: _Reader, source: str) -> Scoring:
    reader = _Reader(top.data.get("scoring", {}) or {}, source, "scoring",
                     ("normalize", "aggregate", "calibration", "content_free", "calibration_file", "temperature",
                      "direction", "search", "tolerance", "rerank"), top.problems)
    direction = reader.choice("direction", DIRECTIONS, "direct")
    # contextual calibration has no meaning for channel scoring (config/direction.py says why): none there
    default_calibration = "none" if direction == "channel" else Scoring.calibration
    return Scoring(
        normalize=reader.choice("normalize", NORMALIZATIONS, "sum"),
        aggregate=reader.choice("aggregate", AGGREGATIONS, "logsumexp"),
        calibration=reader.choice("calibration", method_names(), default_calibration),
        content_free=reader.strings("content_free", DEFAULT_CONTENT_FREE, allow_empty_items=True),
        calibration_file=reader.str("calibration_file"),
        temperature=reader.number("temperature", 1.0, low=1e-3, high=1e3),
        direction=direction,
        search=reader.choice("search", SEARCHES, "exhaustive"),
        tolerance=reader.number("tolerance", 0.0, low=0.0, high=1.0) if reader.has("tolerance") else None,
        rerank=parse_rerank(reader.data.get("rerank"), source=source),
    )


def _parse_decision(top: _Reader, source: str, labels: tuple[Label, ...] | None) -> Decision:
    n_labels = len(labels) if labels else None
    reader = _Reader(top.data.get("decision", {}) or {}, source, "decision",
                     ("mode", "threshold", "top_k", "multi"), top.problems)
    mode = reader.choice("mode", MODES, "single")
    threshold = reader.number("threshold", 0.5 if mode == "multi" else 0.0, low=0.0, high=1.0)
    top_k = reader.integer("top_k", 1, low=1, high=n_labels)
    assert top_k is not None
    multi = MultiLabel()
    if reader.has("multi"):
        raw = reader.data["multi"] or {}
        if isinstance(raw, Mapping):  # YAML reads unquoted yes/no keys as booleans: take them as meant
            raw = {{True: "yes", False: "no"}.get(k, k) if isinstance(k, bool) else k: v for k, v in raw.items()}
        sub = _Reader(raw, source, "decision.multi", ("yes", "no", "scoring", "none"), top.problems)
        yes = sub.strings("yes", multi.yes)
        no = sub.strings("no", multi.no)
        if set(yes) & set(no):
            raise sub.error(f"{sorted(set(yes) & set(no))[0]!r} is both a yes and a no completion", "no")
        scoring = sub.choice("scoring", MULTI_SCORINGS, multi.scoring)
        none = sub.str("none")
        if none is not None:
            if scoring != "shared":
                raise sub.error("names the label that stands for 'none of these', which only scoring: shared has "
                                "(a yes/no question per label can answer no to all of them)", "none")
            names = [label.name for label in labels or ()]
            if labels is not None and none not in names:
                hint = difflib.get_close_matches(none, names, n=1)
                extra = f"; did you mean {hint[0]!r}?" if hint else f" (labels: {', '.join(names)})"
                raise sub.error(f"{none!r} is not one of the labels{extra}", "none")
        if scoring == "shared" and (sub.has("yes") or sub.has("no")):
            raise sub.error("yes/no answers belong to scoring: questions; with scoring: shared the labels' own "
                            "completions are the answers", "yes" if sub.has("yes") else "no")
        multi = MultiLabel(yes=yes, no=no, scoring=scoring, none=none)
    return Decision(mode=mode, threshold=threshold, top_k=top_k, multi=multi)


def with_runtime(config: Config, overrides: Mapping[str, Any]) -> Config:
    """``config`` with ``runtime.*`` settings overridden (keyword arguments of ``Classifier.from_config``,
    Ray, the estimator), each checked as the config file's would be: a bad value or an unknown name is a
    ConfigError naming ``runtime.<name>``. A value of None leaves the config's setting as it is.

    >>> with_runtime(parse_config({"prompt": "{text} ->", "labels": ["a", "b"]}), {"batch_size": 0})
    Traceback (most recent call last):
    lpclassify.errors.ConfigError: <mapping>: runtime.batch_size: expected an integer >= 1 and <= 256, got 0
    """
    wanted = {key: value for key, value in overrides.items() if value is not None}
    if not wanted:
        return config
    current = {key: value for key, value in vars(config.runtime).items() if value is not None}
    problems = _Problems()
    top = _Reader({"runtime": {**current, **wanted}}, config.source, "", ("runtime",), problems)
    runtime = _parse_runtime(top, config.source)
    problems.raise_any()
    if runtime.shorten_field is not None and runtime.shorten_field not in config.fields:
        raise top.error(f"{runtime.shorten_field!r} is not a field of the prompt (its fields: "
                        f"{', '.join(config.fields)})", "runtime.shorten_field")
    return replace(config, runtime=runtime)


def _parse_runtime(top: _Reader, source: str) -> Runtime:
    reader = _Reader(top.data.get("runtime", {}) or {}, source, "runtime",
                     ("n_ctx", "batch_size", "threads", "n_gpu_layers", "long_inputs", "truncate_side",
                      "empty_text", "shorten_field"), top.problems)
    n_ctx = reader.integer("n_ctx", 1024, low=64, high=131072)
    batch_size = reader.integer("batch_size", 8, low=1, high=256)
    n_gpu_layers = reader.integer("n_gpu_layers", 0, low=-1)
    assert n_ctx is not None and batch_size is not None and n_gpu_layers is not None
    return Runtime(
        n_ctx=n_ctx,
        batch_size=batch_size,
        threads=reader.integer("threads", None, low=1, high=512),
        n_gpu_layers=n_gpu_layers,
        long_inputs=reader.choice("long_inputs", LONG_INPUT_POLICIES, "truncate"),
        truncate_side=reader.choice("truncate_side", TRUNCATE_SIDES, "head"),
        empty_text=reader.choice("empty_text", EMPTY_TEXT_POLICIES, "error"),
        shorten_field=reader.str("shorten_field"),
    )
