"""The FastAPI app: routes for both API shapes, health, models, metrics; built by :func:`create_app`.

Each request passes fixed stages -- parse (pydantic), find the config, check the inputs, queue
(a full queue is a 429 at once), await the batch (504 past the timeout), build the response -- and
every failure becomes one JSON error body (:mod:`.errors`). No globals: the app holds its
:class:`~lpclassify.serve.service.Service` and its own metrics registry.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from .. import __version__
from ..decision import Prediction
from ..errors import LpclassifyError
from .errors import BadRequest, ServeError, classify_error, validation_message
from .guards import ApiKeyGuard, ASGIApp, BodyLimit
from .metrics import Metrics
from .protocol import (
    ClassificationData,
    ClassificationRequest,
    ClassificationResponse,
    ErrorResponse,
    Health,
    ModelCard,
    ModelList,
    UsageInfo,
    ZeroShotOutput,
    ZeroShotRequest,
    ZeroShotResponse,
    error_body,
    ignored_fields,
)
from .service import Service

log = logging.getLogger("lpclassify.serve")

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 429, 503, 504)}


@dataclass(frozen=True)
class AppSettings:
    api_key: str | None = None  # required as a bearer token on every route but /health
    max_body_bytes: int = 1 << 20


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value  # NaN: an abstention on an empty text (JSON has no NaN)


def classification_data(index: int, prediction: Prediction, names: tuple[str, ...], top_k: int | None,
                        single: bool = True) -> ClassificationData:
    """One row of a /v1/classify answer; ``top_k`` keeps the k most likely labels' probabilities (and, in
    single-label mode, makes them the chosen labels, as ``classify --top-k`` does)."""
    probs = prediction.probabilities
    chosen = list(prediction.labels)
    shown = dict(probs)
    if top_k is not None:
        best = sorted(names, key=lambda name: -probs[name])[:top_k]  # stable: ties keep label order
        shown = {name: probs[name] for name in best}
        if single and not prediction.abstained:
            chosen = best
    return ClassificationData(index=index, label=prediction.label, labels=chosen,
                              probs=[_number(probs[name]) for name in names], num_classes=len(names),
                              probabilities={name: _number(p) for name, p in shown.items()},
                              abstained=prediction.abstained, reason=prediction.reason,
                              truncated=prediction.truncated)


def create_app(service: Service, settings: AppSettings = AppSettings()) -> ASGIApp:
    """The ASGI app serving ``service``: FastAPI's routes inside the body-limit and API-key guards."""
    metrics = Metrics(service.queue_depth)
    process = str(os.getpid())
    service.on_batch = metrics.batch

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            await service.close()  # SIGTERM: uvicorn stopped accepting; finish what was accepted

    app = FastAPI(title="lpclassify", version=__version__, lifespan=lifespan, responses=ERRORS,
                  description="Zero-shot text classification from language-model log-probabilities.")

    def error_response(exc: BaseException, endpoint: str) -> JSONResponse:
        status, kind, message, param, headers = classify_error(exc)
        if status >= 500 and kind == "internal_error":
            log.error("internal error on %s", endpoint, exc_info=exc)
        metrics.errors.labels(kind=kind).inc()
        return JSONResponse(error_body(message, kind, status, param), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = validation_message(list(exc.errors()))
        return error_response(BadRequest(message, param=param), request.url.path)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        metrics.errors.labels(kind=kind).inc()
        return JSONResponse(error_body(str(exc.detail), kind, exc.status_code), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(ServeError)
    @app.exception_handler(LpclassifyError)
    async def refused_request(request: Request, exc: Exception) -> JSONResponse:
        return error_response(exc, request.url.path)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:  # a bug: 500, logged
        return error_response(exc, request.url.path)

    @app.middleware("http")
    async def count(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response: Response = await call_next(request)
        endpoint = request.scope.get("route").path if request.scope.get("route") else "other"  # type: ignore[union-attr]
        response.headers["x-lpclassify-process"] = process  # which server (or Ray replica) answered
        metrics.requests.labels(endpoint=endpoint, code=str(response.status_code)).inc()
        metrics.request_seconds.labels(endpoint=endpoint).observe(time.perf_counter() - started)
        return response

    def note_ignored(body: Any) -> None:
        if names := ignored_fields(body):
            log.info("ignored unknown request fields: %s", ", ".join(names))

    @app.post("/v1/classify", response_model=ClassificationResponse, tags=["classify"])
    async def classify(body: ClassificationRequest) -> ClassificationResponse:
        """Classify texts (or records of the prompt's fields) with a served config (vLLM's shape)."""
        note_ignored(body)
        clf = service.classifier(body.model)
        items = body.input if isinstance(body.input, list) else [body.input]
        result = await service.classify(clf, items)
        names = clf.config.label_names
        top_k = min(body.top_k, len(names)) if body.top_k else None
        single = clf.config.decision.mode == "single"
        data = [classification_data(i, p, names, top_k, single) for i, p in enumerate(result.predictions)]
        usage = UsageInfo(prompt_tokens=result.prompt_tokens, total_tokens=result.prompt_tokens)
        return ClassificationResponse(model=body.model, data=data, usage=usage)

    @app.post("/v1/zero-shot", response_model=ZeroShotResponse, tags=["classify"])
    async def zero_shot(body: ZeroShotRequest, response: Response) -> ZeroShotResponse:
        """Classify texts into labels given with the request (Hugging Face's zero-shot shape)."""
        note_ignored(body)
        params = body.parameters
        if not params.candidate_labels:
            raise BadRequest("parameters.candidate_labels is empty: give the labels to choose from",
                             param="parameters.candidate_labels")
        clf, cached = await service.label_set(params.candidate_labels, params.prompt, params.multi_label, body.model)
        metrics.label_sets.labels(result="hit" if cached else "miss").inc()
        response.headers["x-label-set-cache"] = "hit" if cached else "miss"
        texts = body.inputs if isinstance(body.inputs, list) else [body.inputs]
        result = await service.classify(clf, texts, param="inputs")
        outputs = []
        for text, prediction in zip(texts, result.predictions, strict=True):
            ranked = sorted(prediction.probabilities.items(), key=lambda item: -item[1])
            outputs.append(ZeroShotOutput(sequence=text, labels=[name for name, _ in ranked],
                                          scores=[p for _, p in ranked]))
        return outputs if isinstance(body.inputs, list) else outputs[0]

    @app.get("/health", response_model=Health, tags=["service"])
    async def health() -> Health:
        return Health()

    @app.get("/v1/models", response_model=ModelList, tags=["service"])
    async def models() -> ModelList:
        cards = [ModelCard(id=name, labels=list(clf.config.label_names), mode=clf.config.decision.mode,
                           fields=list(clf.config.fields), model_file=clf.backend.identity().name or "",
                           calibration=clf.config.scoring.calibration)
                 for name, clf in service.classifiers.items()]
        return ModelList(data=cards)

    @app.get("/metrics", tags=["service"])
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    def refused(kind: str) -> Any:
        return lambda: metrics.errors.labels(kind=kind).inc()

    guarded: ASGIApp = BodyLimit(app, settings.max_body_bytes, on_refused=refused("too_large"))
    if settings.api_key:
        guarded = ApiKeyGuard(guarded, settings.api_key, on_refused=refused("unauthorized"))
    guarded.fastapi = app  # type: ignore[attr-defined]  # for tests and for mounting elsewhere
    return guarded
