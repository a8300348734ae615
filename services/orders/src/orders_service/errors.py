"""Errors of the orders service; each carries its HTTP status (see storefront_kit.errors).

Orders-specific problems (stable ``code`` in parentheses)::

    BadRequest 400
    └── IdempotencyKeyMissing     (idempotency_key_missing)  POST /orders without the header
    Forbidden 403
    └── CheckoutRefused           (checkout_refused)         a fraud rule refused the checkout
    NotFound 404
    └── OrderNotFound             (order_not_found)          unknown, or another user's
    Conflict 409
    ├── IdempotencyKeyReused      (idempotency_key_reused)   same key, different body
    ├── InvalidStatusTransition   (invalid_status_transition)
    ├── OrderNotCancellable       (order_not_cancellable)    shipped, delivered or failed
    └── OrderNotOnHold            (order_not_on_hold)        a review of an order not ON_HOLD
    UnprocessableEntity 422
    └── CardNumberRefused         (card_number_refused)      a card number anywhere in the body
"""

from storefront_kit.errors import BadRequest, Conflict, Forbidden, NotFound, UnprocessableEntity

__all__ = [
    "CardNumberRefused",
    "CheckoutRefused",
    "IdempotencyKeyMissing",
    "IdempotencyKeyReused",
    "InvalidStatusTransition",
    "OrderNotCancellable",
    "OrderNotFound",
    "OrderNotOnHold",
]


class IdempotencyKeyMissing(BadRequest):
    code = "idempotency_key_missing"
    title = "Idempotency-Key required"


class IdempotencyKeyReused(Conflict):
    """The key was already used by this user with a different request body."""

    code = "idempotency_key_reused"
    title = "Idempotency-Key reused"


class OrderNotFound(NotFound):
    code = "order_not_found"
    title = "Order not found"


class InvalidStatusTransition(Conflict):
    code = "invalid_status_transition"
    title = "Invalid status transition"


class OrderNotCancellable(Conflict):
    code = "order_not_cancellable"
    title = "Order cannot be cancelled"


class CardNumberRefused(UnprocessableEntity):
    """The body holds what looks like a card number; the problem never repeats it."""

    code = "card_number_refused"
    title = "Card numbers are not accepted"


class CheckoutRefused(Forbidden):
    """A fraud rule refused the checkout; the order ended FAILED ``fraud_refused``."""

    code = "checkout_refused"
    title = "Checkout refused"


class OrderNotOnHold(Conflict):
    code = "order_not_on_hold"
    title = "Order is not on hold"
