"""Errors of the inventory service; each carries its HTTP status (see storefront_kit.errors).

Inventory-specific problems (stable ``code`` in parentheses)::

    Conflict 409
    ├── InsufficientStock        (insufficient_stock)   a line cannot be met; ``skus``
    ├── ProductUnavailable       (product_unavailable)  inactive or deleted; ``skus``
    ├── ReservationMismatch      (reservation_mismatch) same order, different request
    ├── ReservationStateConflict (reservation_state)    release after commit, commit after release
    ├── StockBelowReserved       (stock_below_reserved) an adjustment would undercut holds
    └── SkuTaken                 (sku_taken)            create with an existing sku
    UnprocessableEntity 422
    ├── UnknownSku               (unknown_sku)          ``skus`` that do not exist
    ├── MixedCurrency            (mixed_currency)       one reservation, one currency
    └── InvalidRequest           (validation_error)     limits that come from settings
    NotFound 404
    ├── ProductNotFound          (product_not_found)
    └── ReservationNotFound      (reservation_not_found)
    PreconditionFailed 412 (precondition_failed), PreconditionRequired 428 (precondition_required)
"""

from collections.abc import Iterable
from typing import ClassVar

from storefront_kit.errors import (
    AppError,
    Conflict,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    UnprocessableEntity,
)

__all__ = [
    "AppError",
    "InsufficientStock",
    "InvalidRequest",
    "MixedCurrency",
    "PreconditionFailed",
    "PreconditionRequired",
    "ProductNotFound",
    "ProductUnavailable",
    "ReservationMismatch",
    "ReservationNotFound",
    "ReservationStateConflict",
    "SkuTaken",
    "StockBelowReserved",
    "UnknownSku",
]


class _SkusProblem(AppError):
    """A problem with some skus: the detail names them after :attr:`lead`, and ``skus``
    lists them, sorted."""

    lead: ClassVar[str]

    def __init__(self, skus: Iterable[str]) -> None:
        names = sorted(skus)
        super().__init__(f"{self.lead} {', '.join(names)}.", skus=names)


class InsufficientStock(_SkusProblem, Conflict):
    """At least one line of a reservation cannot be met; nothing was reserved."""

    code = "insufficient_stock"
    title = "Insufficient stock"
    lead = "Not enough stock for:"


class ProductUnavailable(_SkusProblem, Conflict):
    """A line names a product that is inactive or deleted."""

    code = "product_unavailable"
    title = "Product unavailable"
    lead = "Not for sale:"


class UnknownSku(_SkusProblem, UnprocessableEntity):
    """A line names a sku that does not exist."""

    code = "unknown_sku"
    title = "Unknown sku"
    lead = "Unknown skus:"


class MixedCurrency(UnprocessableEntity):
    """The lines of one reservation are priced in different currencies."""

    code = "mixed_currency"
    title = "Mixed currencies"


class InvalidRequest(UnprocessableEntity):
    """A request outside a limit that comes from settings (page size, ttl, lines)."""

    code = "validation_error"
    title = "Request validation failed"


class ReservationMismatch(Conflict):
    """The order already has a reservation made from a different request."""

    code = "reservation_mismatch"
    title = "Reservation mismatch"


class ReservationStateConflict(Conflict):
    """The reservation is in a state that forbids this transition."""

    code = "reservation_state"
    title = "Reservation state conflict"


class ReservationNotFound(NotFound):
    code = "reservation_not_found"
    title = "Reservation not found"


class ProductNotFound(NotFound):
    code = "product_not_found"
    title = "Product not found"


class StockBelowReserved(Conflict):
    """A stock adjustment would leave less on hand than is reserved (or below zero)."""

    code = "stock_below_reserved"
    title = "Stock below reserved"


class SkuTaken(Conflict):
    code = "sku_taken"
    title = "Sku already exists"
