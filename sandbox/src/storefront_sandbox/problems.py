"""RFC 9457 problem responses for the sandboxes' own (non-Bot-API) routes.

The services under test parse these exactly as they parse the real providers' errors,
so every 4xx/5xx here carries the same ``{type, title, status, detail, code}`` shape
as the platform's own services (docs/design.md §4), with a stable ``code``.
"""

from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_TYPE_BASE",
    "ProblemError",
    "install_problem_handlers",
    "problem_response",
    "problem_responses",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://storefront.dev/problems/"

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    402: "payment_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class ProblemError(Exception):
    """Raised anywhere in a handler; rendered as one problem response."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title or _title(status)
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        """The JSON body, kept separate so idempotent replays can store it."""
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.code.replace("_", "-"),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        body.update({k: v for k, v in self.extra.items() if k not in body})
        return body

    def response(self) -> Response:
        """This problem as an ``application/problem+json`` response."""
        return JSONResponse(
            self.body(),
            status_code=self.status,
            media_type=PROBLEM_MEDIA_TYPE,
            headers=self.headers,
        )


def problem_response(
    status: int,
    code: str | None = None,
    detail: str | None = None,
    *,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Build a problem response without raising."""
    return ProblemError(
        status,
        code or _CODES.get(status, "error"),
        detail or _title(status),
        extra=extra,
        headers=headers,
    ).response()


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for a route: the problem statuses it may answer with."""
    return {
        status: {"description": _title(status), "content": {PROBLEM_MEDIA_TYPE: {}}}
        for status in statuses
    }


def _validation_errors(errors: Iterable[Any]) -> list[dict[str, Any]]:
    # The input is not echoed back: it may be large, and it is the caller's own anyway.
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]


def install_problem_handlers(app: FastAPI) -> None:
    """Render ProblemError, HTTP errors and validation errors as problems."""

    async def problem_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        return exc.response()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(exc.status_code, detail=detail, headers=exc.headers)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return problem_response(
            422,
            "validation_error",
            "The request does not match the schema.",
            extra={"errors": _validation_errors(exc.errors())},
        )

    app.add_exception_handler(ProblemError, problem_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
