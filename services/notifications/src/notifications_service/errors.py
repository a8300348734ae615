"""Errors of the notifications service; each carries its HTTP status (see storefront_kit.errors).

Notifications-specific problems (stable ``code`` in parentheses)::

    Unauthorized 401
    └── WebhookSecretMissing   (webhook_secret_missing)  no X-Telegram-Bot-Api-Secret-Token
    Forbidden 403
    └── WebhookSecretInvalid   (webhook_secret_invalid)  not the secret the webhook was set with
    BadRequest 400
    └── InvalidUpdate          (invalid_update)          not JSON, or not a Telegram Update
    NotFound 404
    └── DeadLetterNotFound     (dead_letter_not_found)   no such dead letter of this group
    UnprocessableEntity 422
    └── InvalidRequest         (validation_error)        limits that come from settings
"""

from storefront_kit.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    UnprocessableEntity,
)

__all__ = [
    "DeadLetterNotFound",
    "InvalidRequest",
    "InvalidUpdate",
    "ServiceUnavailable",
    "WebhookSecretInvalid",
    "WebhookSecretMissing",
]


class WebhookSecretMissing(Unauthorized):
    code = "webhook_secret_missing"
    title = "Webhook secret missing"


class WebhookSecretInvalid(Forbidden):
    code = "webhook_secret_invalid"
    title = "Webhook secret invalid"


class InvalidUpdate(BadRequest):
    code = "invalid_update"
    title = "Invalid Telegram update"


class InvalidRequest(UnprocessableEntity):
    """A dead-letter cursor Redis does not accept (a page size out of bounds is the kit's
    :class:`~storefront_kit.paging.InvalidPaging`, in the same shape)."""

    code = "validation_error"
    title = "Request validation failed"


class DeadLetterNotFound(NotFound):
    code = "dead_letter_not_found"
    title = "No such dead letter"
