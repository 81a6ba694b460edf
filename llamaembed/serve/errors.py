"""Errors leave the server here: ``ApiError`` and one table from every exception to an answer.

Routes and the guard raise :class:`ApiError` for what HTTP itself decides (a missing key,
an unknown model, a bad field). Everything else a request can raise, the library's
errors included, is turned into an answer by :func:`to_api_error`, which reads
:data:`LIBRARY_ERRORS`: one row per exception class, first match wins, as httpx maps
transport errors through one table. Every answer has OpenAI's error shape.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    EmptyInputError,
    InferenceError,
    InputTooLongError,
    InvalidTokenError,
    MissingHeadError,
    QueueFullError,
    RequestTooLargeError,
)
from .infer import ClientGone
from .schemas import error_body

__all__ = [
    "ANSWERED",
    "LIBRARY_ERRORS",
    "ApiError",
    "ErrorRow",
    "ErrorShape",
    "error_response",
    "to_api_error",
]

logger = logging.getLogger(__name__)

ErrorShape = Literal["openai", "ollama"]
"""How a route's clients read errors: OpenAI's ``{"error": {message, type, param, code}}``,
or Ollama's ``{"error": message}``."""

CLIENT_GONE_STATUS = 499  # nginx's "client closed request": nobody reads it, metrics do


class ApiError(Exception):
    """An answer other than 200, in OpenAI's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = headers or {}

    def response(self, shape: ErrorShape = "openai") -> Response:
        """Return the error as a response, in OpenAI's shape or Ollama's."""
        if self.status == CLIENT_GONE_STATUS:
            return Response(status_code=self.status)
        body: dict[str, Any] = (
            {"error": self.message}
            if shape == "ollama"
            else error_body(self.message, self.type, self.param, self.code)
        )
        return JSONResponse(body, status_code=self.status, headers=self.headers)


@dataclass(frozen=True)
class ErrorRow:
    """How one exception class is answered."""

    status: int
    code: str
    type_: str = "invalid_request_error"
    param: str | None = None
    message: Callable[[BaseException], str] = str
    headers: Callable[[BaseException], dict[str, str]] | None = None


def _too_long(exc: BaseException) -> str:
    assert isinstance(exc, InputTooLongError)
    return (
        f"input at index {exc.index} has {exc.n_tokens} tokens; the model takes at most "
        f"{exc.limit}. Send truncate=true to cut it, or split it."
    )


def _retry_after(exc: BaseException) -> dict[str, str]:
    assert isinstance(exc, QueueFullError)
    return {"Retry-After": str(math.ceil(exc.retry_after))}


def _validation_row(exc: BaseException) -> ApiError:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    if first.get("type") == "json_invalid":
        return ApiError(400, f"the body is not valid JSON: {first['msg']}", code="invalid_json")
    param = ".".join(loc) or None
    where = f"{param}: " if param else ""
    return ApiError(422, f"{where}{first['msg']}", param=param, code="invalid_type")


def _http_row(exc: BaseException) -> ApiError:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
    return ApiError(exc.status_code, str(exc.detail), code=code)


# Exception class -> answer, first match wins (subclasses before their bases).
LIBRARY_ERRORS: tuple[tuple[type[Exception], ErrorRow], ...] = (
    (InputTooLongError, ErrorRow(400, "input_too_long", param="input", message=_too_long)),
    (InvalidTokenError, ErrorRow(400, "invalid_token", param="input")),
    (MissingHeadError, ErrorRow(400, "missing_head", param="model")),
    (EmptyInputError, ErrorRow(400, "empty_input", param="input")),
    (RequestTooLargeError, ErrorRow(413, "too_many_tokens", param="input")),
    (
        QueueFullError,
        ErrorRow(
            429,
            "queue_full",
            type_="rate_limit_error",
            message=lambda exc: f"the server is busy: {exc}",
            headers=_retry_after,
        ),
    ),
    (ClientGone, ErrorRow(CLIENT_GONE_STATUS, "client_disconnected")),
    (InferenceError, ErrorRow(500, "inference_failed", type_="server_error")),
)

# Exceptions of the web framework, each answered by a function of its own.
_FRAMEWORK_ERRORS: tuple[tuple[type[Exception], Callable[[BaseException], ApiError]], ...] = (
    (RequestValidationError, _validation_row),
    (StarletteHTTPException, _http_row),
)


# Every exception class the app hands to error_response: the tables' classes, ApiError,
# and Exception for anything else (a 500).
ANSWERED: tuple[type[Exception], ...] = (
    ApiError,
    *(kind for kind, _row in LIBRARY_ERRORS),
    *(kind for kind, _convert in _FRAMEWORK_ERRORS),
    Exception,
)


def to_api_error(exc: BaseException) -> ApiError:
    """Return the answer to an exception a request raised (a 500 for one no table knows)."""
    if isinstance(exc, ApiError):
        return exc
    for kind, row in LIBRARY_ERRORS:
        if isinstance(exc, kind):
            headers = row.headers(exc) if row.headers is not None else None
            return ApiError(
                row.status,
                row.message(exc),
                type_=row.type_,
                param=row.param,
                code=row.code,
                headers=headers,
            )
    for kind, convert in _FRAMEWORK_ERRORS:
        if isinstance(exc, kind):
            return convert(exc)
    logger.error("unexpected error", exc_info=exc)
    return ApiError(500, f"internal error: {exc}", type_="server_error", code="internal")


def error_response(
    exc: BaseException, count: Callable[[str], None], shape: ErrorShape = "openai"
) -> Response:
    """Return the answer to ``exc``; ``count(code)`` hears the failure's code for metrics."""
    error = to_api_error(exc)
    count(error.code or error.type)
    return error.response(shape)
