"""One-time codes: 6 digits from a CSPRNG, kept only as a peppered HMAC."""

import hashlib
import hmac
import secrets

__all__ = ["CODE_DIGITS", "code_digest", "codes_match", "new_code", "new_link_token"]

CODE_DIGITS = 6


def new_code() -> str:
    """A uniformly random code of :data:`CODE_DIGITS` digits (leading zeros kept)."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def new_link_token() -> str:
    """A one-time token for the Telegram deep link (``/start <token>``, at most 64 chars)."""
    return secrets.token_urlsafe(24)


def code_digest(*, pepper: bytes, phone: str, code: str) -> str:
    """HMAC-SHA256 of ``phone:code`` under the server-side pepper (hex).

    Binding the phone means one digest cannot be replayed for another number; the pepper
    (never in Redis) means a dump of Redis alone does not reveal the codes.
    """
    return hmac.new(pepper, f"{phone}:{code}".encode(), hashlib.sha256).hexdigest()


def codes_match(expected_digest: str, *, pepper: bytes, phone: str, code: str) -> bool:
    """Constant-time comparison of a submitted code against the stored digest."""
    candidate = code_digest(pepper=pepper, phone=phone, code=code)
    return hmac.compare_digest(candidate.encode(), expected_digest.encode())
