"""One table from what went wrong to an HTTP status, and one error body for every route.

Every error answer is ``{"error": {"message", "type", "param", "code"}}`` with a one-line
message (:func:`lpclassify.serve.protocol.error_body`); a user's mistake never gets a 500 or
a traceback. Anything not in the table is a bug: 500, logged with its traceback server-side.
"""

from __future__ import annotations

from ..errors import CapacityError, ConfigError, InputError, LpclassifyError, ModelError, one_line


class ServeError(Exception):
    """An error with its HTTP status, kind and (optionally) the request field it is about."""

    status = 400
    kind = "invalid_request"

    def __init__(self, message: str, *, param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(one_line(message))
        self.message = one_line(message)
        self.param = param
        self.headers = headers or {}


class BadRequest(ServeError):
    status, kind = 400, "invalid_request"


class Unauthorized(ServeError):
    status, kind = 401, "unauthorized"


class NotFound(ServeError):
    status, kind = 404, "not_found"


class TooLarge(ServeError):
    status, kind = 413, "too_large"


class Overloaded(ServeError):
    """The queue is full: come back later (``Retry-After``) rather than wait without limit."""

    status, kind = 429, "overloaded"


class ShuttingDown(ServeError):
    status, kind = 503, "shutting_down"


class TimedOut(ServeError):
    status, kind = 504, "timeout"


# The library's errors: what each means for a client.
LIBRARY_STATUS: tuple[tuple[type[LpclassifyError], int, str], ...] = (
    (InputError, 400, "invalid_input"),
    (ConfigError, 400, "invalid_labels"),  # a label set from the request (the served configs loaded at start)
    (CapacityError, 413, "too_large"),
    (ModelError, 503, "model_error"),
    (LpclassifyError, 400, "invalid_request"),
)


def classify_error(exc: BaseException) -> tuple[int, str, str, str | None, dict[str, str]]:
    """``(status, kind, message, param, headers)`` for an exception; 500 for a bug."""
    if isinstance(exc, ServeError):
        return exc.status, exc.kind, exc.message, exc.param, exc.headers
    for cls, status, kind in LIBRARY_STATUS:
        if isinstance(exc, cls):
            return status, kind, one_line(exc), None, {}
    return 500, "internal_error", f"internal error ({type(exc).__name__}); see the server's log", None, {}


def validation_message(errors: list[dict]) -> tuple[str, str | None]:
    """pydantic's validation errors -> one line naming the field (and the field's dotted name)."""
    if not errors:
        return "invalid request", None
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    where = ".".join(loc)
    kind = first.get("type", "")
    if kind == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "")
        return f"malformed JSON in the request body{': ' + str(detail) if detail else ''}", None
    if kind == "missing":
        return f"missing field {where!r}", where or None
    message = first.get("msg", "invalid value")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return (f"{where}: {message}{more}" if where else f"{message}{more}"), where or None
