"""Errors that carry their HTTP status, a stable ``code`` and the RFC 6750 challenge.

They subclass Starlette's ``HTTPException`` so that any FastAPI app answers them
correctly without knowing this library; an app with a problem-details handler also
gets ``code`` for the problem body.
"""

from starlette.exceptions import HTTPException

__all__ = [
    "CallerNotAllowedError",
    "ExpiredTokenError",
    "InsufficientRoleError",
    "InvalidTokenError",
    "KeysUnavailableError",
    "MissingTokenError",
    "TokenError",
    "UnknownKeyError",
]


def _challenge(error: str | None, description: str) -> dict[str, str]:
    if error is None:
        return {"WWW-Authenticate": 'Bearer realm="storefront"'}
    # RFC 6750 §3: quoted-string values; the description never contains a quote.
    text = description.replace('"', "'")
    return {
        "WWW-Authenticate": (
            f'Bearer realm="storefront", error="{error}", error_description="{text}"'
        )
    }


class TokenError(HTTPException):
    """A request's credentials were refused (401)."""

    code = "invalid_token"
    challenge_error: str | None = "invalid_token"

    def __init__(self, detail: str = "The access token is invalid.") -> None:
        super().__init__(401, detail=detail, headers=_challenge(self.challenge_error, detail))


class MissingTokenError(TokenError):
    """No bearer token was sent."""

    code = "not_authenticated"
    challenge_error = None

    def __init__(self, detail: str = "A bearer token is required.") -> None:
        super().__init__(detail)


class InvalidTokenError(TokenError):
    """Malformed, tampered, wrongly signed, or for another issuer/audience/type."""


class ExpiredTokenError(TokenError):
    """Past ``exp`` (beyond the leeway)."""

    code = "token_expired"

    def __init__(self, detail: str = "The access token has expired.") -> None:
        super().__init__(detail)


class UnknownKeyError(TokenError):
    """Signed with a ``kid`` that the key source does not know, even after a refresh."""

    def __init__(self, detail: str = "The token was signed with an unknown key.") -> None:
        super().__init__(detail)


class InsufficientRoleError(HTTPException):
    """Authenticated, but the token lacks a required role (403)."""

    code = "forbidden"

    def __init__(self, detail: str = "The token lacks a required role.") -> None:
        headers = _challenge("insufficient_scope", detail)
        super().__init__(403, detail=detail, headers=headers)


class CallerNotAllowedError(HTTPException):
    """A valid service token from a service the route does not accept (403)."""

    code = "caller_not_allowed"

    def __init__(self, detail: str = "This service may not call this route.") -> None:
        super().__init__(403, detail=detail)


class KeysUnavailableError(HTTPException):
    """No verification key could be loaded at all (auth unreachable on a cold cache): 503."""

    code = "keys_unavailable"

    def __init__(self, detail: str = "Token keys are temporarily unavailable.") -> None:
        super().__init__(503, detail=detail, headers={"Retry-After": "5"})
