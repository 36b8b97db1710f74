"""A model's own chat template, rendered the way Hugging Face's ``apply_chat_template`` does.

The template is Jinja text from the model file (GGUF ``tokenizer.chat_template``); it runs in a
sandbox (``ImmutableSandboxedEnvironment``: no attribute access to Python internals, no
mutation), with ``trim_blocks``/``lstrip_blocks``, the ``loopcontrols`` extension,
``raise_exception`` and ``strftime_now``, and ``add_generation_prompt=True``, so the rendered
text ends where the assistant's reply begins.

>>> from lpclassify.backends.base import ChatTemplate
>>> chatml = ChatTemplate("{% for m in messages %}<|im_start|>{{ m.role }}\\n{{ m.content }}<|im_end|>\\n"
...                       "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\\n{% endif %}",
...                       "", "<|im_end|>", "toy.gguf")
>>> render_chat(chatml, [{"role": "user", "content": "Hi"}])
'<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n'
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import NoReturn

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .backends.base import ChatTemplate
from .errors import ModelError


class TemplateRaised(Exception):
    """``raise_exception(message)`` called by a chat template (it refuses the messages)."""


def _raise(message: str) -> NoReturn:
    raise TemplateRaised(message)


def _now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


def environment() -> ImmutableSandboxedEnvironment:
    """The sandboxed Jinja environment chat templates run in."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = _now
    return env


def render_chat(template: ChatTemplate, messages: Sequence[dict[str, str]]) -> str:
    """The chat template applied to ``messages``, with the generation prompt; ModelError if it fails."""
    try:
        compiled = environment().from_string(template.source)
        return compiled.render(messages=list(messages), add_generation_prompt=True, bos_token=template.bos_token,
                               eos_token=template.eos_token)
    except TemplateRaised as exc:
        raise ModelError(f"the chat template of {template.model} refuses these messages: {exc}") from None
    except (jinja2.TemplateError, TypeError, ValueError) as exc:
        raise ModelError(f"the chat template of {template.model} cannot be rendered: {type(exc).__name__}: {exc}"
                         ) from None
