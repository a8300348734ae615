"""Errors that carry their HTTP status, rendered as RFC 9457 problem details.

Exception tree::

    AppError                    500 internal_error
    ├── BadRequest              400 bad_request
    ├── Unauthorized            401 unauthorized
    ├── Forbidden               403 forbidden
    ├── NotFound                404 not_found
    ├── Conflict                409 conflict
    ├── PreconditionFailed      412 precondition_failed
    ├── PreconditionRequired    428 precondition_required
    ├── UnprocessableEntity     422 unprocessable_entity
    ├── TooManyRequests         429 rate_limited
    └── ServiceUnavailable      503 service_unavailable

Domain code raises these (or subclasses with a more specific ``code``); one handler
turns them into ``application/problem+json``. The ``code`` is the stable,
machine-readable part; ``type`` is a URI built from it. An error whose
``keeps_transaction`` is true still commits the request's transaction
(:func:`storefront_kit.db.request_session`): what was done before it must stick
although the request fails.
"""

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "PROBLEM_TYPE_BASE",
    "AppError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "PreconditionFailed",
    "PreconditionRequired",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "UnprocessableEntity",
    "problem_type",
]

PROBLEM_TYPE_BASE = "https://storefront.dev/problems/"


def problem_type(code: str) -> str:
    """The ``type`` URI of a problem code."""
    return PROBLEM_TYPE_BASE + code.replace("_", "-")


class AppError(Exception):
    """Base of every error that maps to an HTTP problem response."""

    status_code: ClassVar[int] = 500
    code: str = "internal_error"
    title: ClassVar[str] = "Internal server error"
    #: Commit the transaction this error ends instead of rolling it back.
    keeps_transaction: ClassVar[bool] = False

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code is not None:
            self.code = code
        self.headers = dict(headers or {})
        self.extra = extra

    def __init_subclass__(
        cls,
        *,
        status: int | None = None,
        code: str | None = None,
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Let a subclass declare its status, code and title as class keywords."""
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status_code = status
        if code is not None:
            cls.code = code
        if title is not None:
            cls.title = title


# Each status is declared once, as class keywords (``__init_subclass__`` sets them).
class BadRequest(AppError, status=400, code="bad_request", title="Bad request"): ...


class Unauthorized(AppError, status=401, code="unauthorized", title="Authentication required"): ...


class Forbidden(AppError, status=403, code="forbidden", title="Forbidden"): ...


class NotFound(AppError, status=404, code="not_found", title="Not found"): ...


class Conflict(AppError, status=409, code="conflict", title="Conflict"): ...


class PreconditionFailed(
    AppError, status=412, code="precondition_failed", title="Precondition failed"
): ...


class UnprocessableEntity(
    AppError, status=422, code="unprocessable_entity", title="Unprocessable entity"
): ...


class PreconditionRequired(
    AppError, status=428, code="precondition_required", title="Precondition required"
): ...


class TooManyRequests(AppError, status=429, code="rate_limited", title="Too many requests"):
    def __init__(self, detail: str | None = None, *, retry_after: int, **kwargs: Any) -> None:
        headers = {"Retry-After": str(max(1, retry_after)), **kwargs.pop("headers", {})}
        super().__init__(detail, headers=headers, **kwargs)
        self.retry_after = retry_after


class ServiceUnavailable(
    AppError, status=503, code="service_unavailable", title="Service unavailable"
): ...
