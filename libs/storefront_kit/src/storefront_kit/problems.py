"""One place that renders every error as an RFC 9457 problem response."""

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from storefront_kit.errors import AppError, problem_type
from storefront_kit.logging import get_logger
from storefront_kit.request_id import current_request_id

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "VALIDATION_DETAIL",
    "VALIDATION_TITLE",
    "Problem",
    "install_problem_handlers",
    "problem_response",
    "responses",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
#: The title and detail of every request that does not match its schema (``validation_error``).
VALIDATION_TITLE = "Request validation failed"
VALIDATION_DETAIL = "The request does not match the schema."
logger = get_logger(__name__)

_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    412: "Precondition failed",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable entity",
    428: "Precondition required",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


class Problem(BaseModel):
    """RFC 9457 problem details, as documented in OpenAPI."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    code: str
    instance: str | None = None
    request_id: str | None = None


def problem_response(
    status: int,
    *,
    code: str | None = None,
    title: str | None = None,
    detail: str | None = None,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    """Build an ``application/problem+json`` response."""
    code = code or _CODES.get(status, "error")
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    request_id = current_request_id()
    if request_id:
        body["request_id"] = request_id
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    return Response(
        content=orjson.dumps(body, default=str),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def responses(*errors: type[AppError] | int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for a route: the problems it may answer with."""
    documented: dict[int | str, dict[str, Any]] = {}
    for error in errors:
        status = error if isinstance(error, int) else error.status_code
        title = _TITLES.get(status, "Error") if isinstance(error, int) else error.title
        documented[status] = {
            "model": Problem,
            "description": title,
            "content": {PROBLEM_MEDIA_TYPE: {}},
        }
    return documented


def _validation_errors(errors: Iterable[Any]) -> list[dict[str, Any]]:
    # The offending input is not echoed back: it may be huge or hold a secret.
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]


def install_problem_handlers(app: FastAPI) -> None:
    """Render AppError, HTTP errors, validation errors and crashes as problems."""

    async def app_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AppError)
        if exc.status_code >= 500:
            logger.warning("request_failed", code=exc.code, detail=exc.detail)
        return problem_response(
            exc.status_code,
            code=exc.code,
            title=exc.title,
            detail=exc.detail,
            instance=request.url.path,
            headers=exc.headers,
            extra=exc.extra,
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(
            exc.status_code,
            code=getattr(exc, "code", None),
            detail=detail,
            instance=request.url.path,
            headers=exc.headers,
        )

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return problem_response(
            422,
            code="validation_error",
            title=VALIDATION_TITLE,
            detail=VALIDATION_DETAIL,
            instance=request.url.path,
            extra={"errors": _validation_errors(exc.errors())},
        )

    async def unhandled(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled_error", path=request.url.path)
        return problem_response(500, instance=request.url.path)

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unhandled)
