"""Errors of the orders service; each carries its HTTP status (see storefront_kit.errors)."""

from storefront_kit.errors import (
    AppError,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
)

__all__ = ["AppError", "BadRequest", "Conflict", "Forbidden", "NotFound", "ServiceUnavailable"]
