"""The wire format: pydantic models of every request and response (FastAPI builds /docs from them).

Two request shapes that users already know:

* ``POST /v1/classify`` -- vLLM's classification API: ``{"model": config, "input": text | [texts]}``;
  an input item may also be a record of the prompt's fields (``{"premise": ..., "hypothesis": ...}``);
* ``POST /v1/zero-shot`` -- Hugging Face's zero-shot task: ``{"inputs": ..., "parameters":
  {"candidate_labels": [...]}}``, the label set given per call.

Request models accept unknown fields (other clients send them) and the server logs the ones it
ignored; responses carry every probability as it was computed (no rounding), so a response equals
``classify_many`` on the same texts bit for bit.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

InputItem = Union[str, dict[str, str]]  # noqa: UP007 - pydantic reads the annotation at run time


class OpenModel(BaseModel):
    """A request model: unknown fields are kept (and reported by :func:`ignored_fields`), not refused."""

    model_config = ConfigDict(extra="allow")


def ignored_fields(request: BaseModel) -> list[str]:
    """The fields a client sent that the server does not know (to log them)."""
    extra = request.model_extra or {}
    names = list(extra)
    for value in request.__dict__.values():
        if isinstance(value, BaseModel):
            names += [f"{type(value).__name__}.{name}" for name in ignored_fields(value)]
    return names


# --------------------------------------------------------------------------- /v1/classify (vLLM)


class ClassificationRequest(OpenModel):
    model: str = Field(description="the name of a config the server loaded (GET /v1/models lists them)")
    input: Union[InputItem, list[InputItem]] = Field(  # noqa: UP007
        description="a text, a record of the prompt's fields, or a list of them")
    top_k: int | None = Field(None, ge=1, description="list only the k most likely labels in labels/probabilities")


class ClassificationData(BaseModel):
    index: int = Field(description="the input's position in the request")
    label: str | None = Field(description="the predicted label (None when the classifier abstained)")
    labels: list[str] = Field(description="the chosen labels: the top-k (single-label) or every label over its "
                                          "threshold (multi-label)")
    probs: list[float | None] = Field(description="every label's probability, in the config's label order")
    num_classes: int
    probabilities: dict[str, float | None] = Field(description="label -> probability (the top_k best with top_k)")
    abstained: bool = False
    reason: str | None = None
    truncated: bool = False


class UsageInfo(BaseModel):
    prompt_tokens: int = 0
    total_tokens: int = 0
    completion_tokens: int = 0


class ClassificationResponse(BaseModel):
    id: str = Field(default_factory=lambda: f"classify-{uuid.uuid4().hex}")
    object: Literal["list"] = "list"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    data: list[ClassificationData]
    usage: UsageInfo


# --------------------------------------------------------------------------- /v1/zero-shot (Hugging Face)


class ZeroShotParameters(OpenModel):
    candidate_labels: list[str] = Field(description="the label set (at least two labels, or one with multi_label)")
    multi_label: bool = Field(False, description="every label its own yes/no question, scores independent")
    prompt: str | None = Field(None, description="a template with {text} (and {labels} to list the labels); "
                                                 "default: lpclassify.labelsets.DEFAULT_LABELS_PROMPT")


class ZeroShotRequest(OpenModel):
    inputs: Union[str, list[str]] = Field(description="a text or a list of texts")  # noqa: UP007
    parameters: ZeroShotParameters
    model: str | None = Field(None, description="a served config whose model to use (default: the first one's)")


class ZeroShotOutput(BaseModel):
    sequence: str
    labels: list[str] = Field(description="every candidate label, most likely first")
    scores: list[float] = Field(description="their probabilities, in the same order")


ZeroShotResponse = Union[ZeroShotOutput, list[ZeroShotOutput]]  # noqa: UP007 - one output for one text


# --------------------------------------------------------------------------- models, health, errors


class ModelCard(BaseModel):
    id: str = Field(description="the config's name, what requests give as model")
    object: Literal["model"] = "model"
    owned_by: str = "lpclassify"
    labels: list[str]
    mode: str = Field(description="single or multi (multi-label)")
    fields: list[str] = Field(description="the input fields the prompt uses")
    model_file: str = Field(description="the GGUF model the config runs on")
    calibration: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class ErrorInfo(BaseModel):
    message: str = Field(description="one line: what was wrong and how to fix it")
    type: str = Field(description="the kind of error, e.g. invalid_input, overloaded, not_found")
    param: str | None = None
    code: int = Field(description="the HTTP status")


class ErrorResponse(BaseModel):
    error: ErrorInfo


def error_body(message: str, kind: str, status: int, param: str | None = None) -> dict[str, Any]:
    return ErrorResponse(error=ErrorInfo(message=message, type=kind, param=param, code=status)).model_dump()
