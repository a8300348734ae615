"""Errors of the auth service; each carries its HTTP status (see storefront_kit.errors).

Auth-specific problems (stable ``code`` in parentheses)::

    UnprocessableEntity 422
    ├── InvalidPhone             (invalid_phone)          not an E.164 number
    ├── UnknownRole              (unknown_role)           roles outside admin/moderator/customer
    └── InvalidAuditFilter       (invalid_audit_filter)   audit log filters that cannot match
    TooManyRequests 429 (Retry-After)
    ├── OtpCooldown              (otp_cooldown)           a code was sent moments ago
    └── OtpRateLimited           (otp_rate_limited)       per-phone or per-IP limit; ``scope``
    Unauthorized 401
    ├── OtpInvalid               (otp_invalid)            wrong code; ``attempts_left``
    ├── OtpLocked                (otp_locked)             too many wrong codes: the code is dead
    ├── OtpExpired               (otp_expired)            no pending code (expired, used, unsent)
    ├── RefreshTokenInvalid      (refresh_token_invalid)  unknown refresh token
    ├── RefreshTokenExpired      (refresh_token_expired)
    └── RefreshTokenReused       (refresh_token_reused)   spent/revoked token: family revoked
    Forbidden 403
    NotFound 404
    └── UserNotFound             (user_not_found)
    Conflict 409
    ├── OwnAdminRole             (own_admin_role)         an admin removing their own admin role
    ├── PhoneNotProven           (phone_not_proven)       staff role for a user with no chat
    └── UserErased               (user_erased)            the user was erased already
    ServiceUnavailable 503
    └── ExportUnavailable        (export_unavailable)     a service holding the user's data is down

An error whose ``keeps_transaction`` is true still commits the request's transaction
(``storefront_kit.db.request_session``): reuse detection must revoke the family even
though the answer is 401.
"""

from typing import ClassVar

from storefront_kit.errors import (
    Conflict,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    UnprocessableEntity,
)

__all__ = [
    "Conflict",
    "ExportUnavailable",
    "InvalidAuditFilter",
    "InvalidPhone",
    "OtpCooldown",
    "OtpExpired",
    "OtpInvalid",
    "OtpLocked",
    "OtpRateLimited",
    "OwnAdminRole",
    "PhoneNotProven",
    "RefreshTokenExpired",
    "RefreshTokenInvalid",
    "RefreshTokenReused",
    "UnknownRole",
    "UserErased",
    "UserNotFound",
]


class InvalidPhone(UnprocessableEntity):
    code = "invalid_phone"
    title = "Invalid phone number"


class InvalidAuditFilter(UnprocessableEntity):
    code = "invalid_audit_filter"
    title = "The audit log filters are invalid"


class UnknownRole(UnprocessableEntity):
    code = "unknown_role"
    title = "Unknown role"


class OtpCooldown(TooManyRequests):
    code = "otp_cooldown"
    title = "A code was sent moments ago"


class OtpRateLimited(TooManyRequests):
    code = "otp_rate_limited"
    title = "Too many codes requested"


class OtpInvalid(Unauthorized):
    code = "otp_invalid"
    title = "Wrong code"


class OtpLocked(Unauthorized):
    code = "otp_locked"
    title = "Too many wrong codes"


class OtpExpired(Unauthorized):
    code = "otp_expired"
    title = "No valid code"


class RefreshTokenInvalid(Unauthorized):
    code = "refresh_token_invalid"
    title = "Invalid refresh token"


class RefreshTokenExpired(Unauthorized):
    code = "refresh_token_expired"
    title = "Refresh token expired"


class RefreshTokenReused(Unauthorized):
    code = "refresh_token_reused"
    title = "Refresh token reused"
    #: The family's revocation is committed although the request fails.
    keeps_transaction: ClassVar[bool] = True


class UserNotFound(NotFound):
    code = "user_not_found"
    title = "User not found"


class OwnAdminRole(Conflict):
    code = "own_admin_role"
    title = "An admin cannot remove their own admin role"


class PhoneNotProven(Conflict):
    code = "phone_not_proven"
    title = "The user's phone is not proven by a linked Telegram chat"


class UserErased(Conflict):
    code = "user_erased"
    title = "The user was erased"


class ExportUnavailable(ServiceUnavailable):
    code = "export_unavailable"
    title = "A service holding the user's data is unavailable"
