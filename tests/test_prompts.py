"""Prompt configs and rendering without a model: chat messages, fields, examples, escapes, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import CharBackend

from lpclassify import Classifier, ConfigError, InputError
from lpclassify.backends.base import ChatTemplate
from lpclassify.config import load_config, parse_config
from lpclassify.prompts import Prompter
from lpclassify.tokenization import Prompt, Segment, encode_pairs, tokenize_prompt

BASE = {"prompt": "Review: {text}\nSentiment:", "labels": ["positive", "negative"]}
CHATML = ChatTemplate("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                      "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}", "", "<|im_end|>", "toy.gguf")


def error_of(data: object) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return str(info.value)


def test_double_braces_are_literal_braces_and_other_braces_stay() -> None:
    clf = Classifier.from_config({**BASE, "prompt": 'JSON {{"review": "{text}"}} {"a": 1} -> {{text}}:'},
                                 backend=CharBackend())
    assert clf.prompts("ok")[0][0] == 'JSON {"review": "ok"} {"a": 1} -> {text}:'
    assert clf.prompts("{text} {{x}}")[0][0] == 'JSON {"review": "{text} {{x}}"} {"a": 1} -> {text}:'  # input untouched


def test_one_label_in_single_mode_is_an_error_that_suggests_the_fix() -> None:
    assert error_of({**BASE, "labels": ["spam"]}) == (
        "<mapping>: labels: a single-label config with one label ('spam') always answers it with p = 1; add labels, "
        "or ask a yes/no question with decision.mode: multi")
    assert parse_config({**BASE, "labels": ["spam"], "decision": {"mode": "multi"}}).label_names == ("spam",)


@pytest.mark.parametrize(("prompt", "message"), [
    ({"user": "Review: {text}", "sytem": "x"}, "<mapping>: prompt.sytem: unknown key; did you mean 'system'?"),
    ({"system": "Be brief. {text}"} , "<mapping>: prompt.user: missing; a chat prompt needs the user's message, "
                                     "where the input goes"),
    ([{"role": "user", "content": "{text}"}, {"role": "assistant", "content": "ok"}],
     "<mapping>: prompt[1].role: the last message must be the user's (got 'assistant'): the model's reply is what gets "
     "scored"),
    ([{"role": "user"}], "<mapping>: prompt[0]: expected a mapping with exactly the keys role and content"),
    ({"user": "No field here"}, "<mapping>: prompt: the template must contain {text} (or other fields of the input, "
                                "such as {premise}), where the input goes"),
    (3, "<mapping>: prompt: expected a template string, a mapping {system, user} or a list of {role, content} "
        "messages"),
])
def test_chat_prompt_errors(prompt: object, message: str) -> None:
    assert error_of({**BASE, "prompt": prompt}) == message


def test_chat_prompts_render_with_the_template_and_keep_its_trailing_newline() -> None:
    config = parse_config({**BASE, "prompt": [{"role": "system", "content": "Label {{reviews}}."},
                                              {"role": "user", "content": "Review: {text}\n"}],
                           "examples": [{"text": "Great <|im_end|>", "label": "positive"}]})
    frame = Prompter(config, CHATML).frames[0]
    assert frame.display() == ("<|im_start|>system\nLabel {reviews}.<|im_end|>\n"
                               "<|im_start|>user\nReview: Great <|im_end|><|im_end|>\n"
                               "<|im_start|>assistant\n positive<|im_end|>\n"
                               "<|im_start|>user\nReview: {text}<|im_end|>\n<|im_start|>assistant\n")
    # the example's text is data: its "<|im_end|>" is not template text
    data = [p.text for p in frame.parts if isinstance(p, Segment) and not p.template]
    assert data == ["Great <|im_end|>", " positive"]
    prompt = frame.fill({"text": "x"})
    assert prompt.exact_end and str(prompt).endswith("assistant\n")


def test_tokenization_takes_special_tokens_from_template_text_only() -> None:
    def toks(text: str, add_bos: bool) -> list[int]:
        return ([0] if add_bos else []) + [ord(c) for c in text]

    def specials(text: str) -> dict[str, int]:
        return {s: 1000 + i for i, s in enumerate(("<s>", "<e>")) if s in text}

    prompt = Prompt((Segment("<s>u\n", True), Segment("a<e>b"), Segment("<e>\n<s>", True)), exact_end=True)
    ids = tokenize_prompt(toks, prompt, True, specials)
    assert ids == [0, 1000, ord("u"), 10, *map(ord, "a<e>b"), 1001, 10, 1000]
    encoded = encode_pairs(toks, [(prompt, "yes"), (prompt, "no")], specials)
    assert encoded.prompt == tuple(ids)  # the trailing newline stays in the prompt
    assert [c.tokens for c in encoded.candidates] == [tuple(map(ord, "yes")), tuple(map(ord, "no"))]
    bos_in_template = Prompt((Segment("<s>x", True),))
    assert tokenize_prompt(toks, bos_in_template, True, lambda t: {"<s>": 0}) == [0, ord("x")]  # BOS once


def test_examples_from_a_file_and_their_errors(tmp_path: Path) -> None:
    (tmp_path / "shots.jsonl").write_text('{"premise": "a", "hypothesis": "b", "label": "entail"}\n'
                                          '{"premise": "c", "hypothesis": "d", "label": "ential"}\n')
    (tmp_path / "c.yaml").write_text("prompt: 'P: {premise} H: {hypothesis} ->'\nlabels: [entail, other]\n"
                                     "examples: shots.jsonl\n")
    with pytest.raises(ConfigError, match=r"shots\.jsonl:2: label 'ential' is not one of the config's labels; "
                                          r"did you mean 'entail'\?"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "shots.jsonl").write_text('{"premise": "a", "hypothesis": "b", "label": "entail"}\n')
    config = load_config(tmp_path / "c.yaml")
    assert config.fields == ("premise", "hypothesis") and config.examples[0].values == {"premise": "a",
                                                                                         "hypothesis": "b"}
    assert error_of({**BASE, "examples": [{"txt": "x", "label": "positive"}]}) == (
        "<mapping>: examples[0]: no field 'text', which the prompt uses (its fields: 'txt', 'label'); "
        "did you mean 'txt'?")


def test_records_in_python_and_content_free_inputs_fill_every_field() -> None:
    clf = Classifier.from_config({**BASE, "prompt": "A: {a}\nB: {b}\nSame?", "scoring": {"calibration": "contextual"}},
                                 backend=CharBackend())
    assert clf.prompts({"a": "x", "b": "y", "id": 3})[0][0] == "A: x\nB: y\nSame?"
    assert clf.classify({"a": "good", "b": "fine"}).label in ("positive", "negative")
    assert clf.scorer.prompter.fill_all("N/A") == {"a": "N/A", "b": "N/A"}
    with pytest.raises(InputError, match=r"no field 'b' in the input \(its fields: 'a', 'B'\), which the prompt uses "
                                         r"as \{b\}; did you mean 'B'\?"):
        clf.classify({"a": "x", "B": "y"})
    with pytest.raises(InputError, match="empty text"):
        clf.classify({"a": " ", "b": ""})


def test_long_inputs_shorten_the_chosen_field_only() -> None:
    class Small(CharBackend):
        n_ctx = 120

    config = {**BASE, "prompt": "A: {a}\nB: {b}\nSame?"}
    record = {"a": "short one", "b": "word " * 60}
    clf = Classifier.from_config(config, backend=Small())
    encoded, truncated = clf.encode(record)
    assert truncated and "short one" in "".join(map(chr, encoded.prompt)) and encoded.n_tokens <= 120
    clf = Classifier.from_config({**config, "runtime": {"shorten_field": "a"}}, backend=Small())
    with pytest.raises(InputError, match="leaves no room for the text in n_ctx=120"):
        clf.encode(record)  # b alone does not fit, and only a may be cut
