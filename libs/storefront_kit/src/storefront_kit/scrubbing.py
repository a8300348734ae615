"""What never reaches a log line or a trace: personal data and credentials, masked.

:func:`scrub_sensitive` is the structlog processor every log line passes last
(:mod:`storefront_kit.logging`); :func:`scrub_text` masks one string, for what leaves
the process otherwise (span attributes: :mod:`storefront_kit.tracing`; error reports).
Phone numbers, one-time codes, tokens of every kind, addresses and card numbers are
masked whoever wrote the value.
"""

import re
from collections.abc import Mapping
from typing import Any

import structlog

from storefront_kit.cards import mask_card_numbers

__all__ = ["REDACTED", "scrub_sensitive", "scrub_text"]

#: What a masked value becomes.
REDACTED = "[redacted]"

# Keys whose value is masked whatever it is (compared lower-cased, "-" as "_").
_SECRET_KEYS = frozenset(
    {
        "phone",
        "phone_number",
        "otp",
        "otp_code",
        "verification_code",
        "token",
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "password",
        "secret",
        "client_secret",
        "api_key",
        "telegram_link",
        "link",
        "payment_method",
        "card",
        "card_number",
        "pan",
        "cvc",
        "cvv",
        "shipping_address",
        "address",
        "line1",
        "line2",
        "street",
        "postal_code",
        "zip",
    }
)
_SECRET_SUFFIXES = ("_token", "_phone", "_password", "_secret", "_address")
# Keys that are secret only when the value is a one-time code (digits): ``code`` also
# names the stable problem codes (``rate_limited``), which must stay readable.
_CODE_KEYS = frozenset({"code"})
# Keys every line has and no secret hides in: not scanned, to keep the common line cheap.
_PLAIN_KEYS = frozenset(
    {"timestamp", "level", "logger", "service", "request_id", "event_id", "trace_id", "span_id"}
)
# Nothing shorter holds a pattern below (the shortest is an E.164 number, "+" and 7 digits).
_SHORTEST = 8
_VALUES = re.compile(
    r"(?P<jwt>\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*)"
    r"|(?P<scheme>\b(?i:bearer|basic)\s+)[A-Za-z0-9._~+/=-]+"
    r"|(?P<payment>\b(?:tok|pm)_[A-Za-z0-9_]+)"
    r"|(?P<bot>(?<!\d)\d{5,12}:[A-Za-z0-9_-]{30,})"
    r"|(?P<query>[?&](?:start|token|code|access_token|refresh_token|phone)=)[^&#\s\"']+"
    r"|(?P<phone>(?<![\w+])\+[1-9]\d{6,14}(?!\d))",
    re.ASCII,
)


def _value_mask(match: re.Match[str]) -> str:
    kept = match.group("scheme") or match.group("query")
    return f"{kept}{REDACTED}" if kept else REDACTED


def scrub_text(text: str) -> str:
    """``text`` with JWTs, bearer credentials, payment and bot tokens, token-bearing query
    parameters, E.164 phone numbers and card numbers masked."""
    if len(text) < _SHORTEST:
        return text
    if _may_match(text):
        text = _VALUES.sub(_value_mask, text)
    return mask_card_numbers(text, mask=REDACTED)


def _may_match(text: str) -> bool:
    # What each branch of _VALUES cannot match without; substring tests are far cheaper
    # than running the pattern over a line that holds none of them (most lines).
    return (
        "+" in text
        or "=" in text
        or ":" in text
        or "eyJ" in text
        or "tok_" in text
        or "pm_" in text
        or "earer" in text
        or "EARER" in text
        or "asic" in text
        or "ASIC" in text
    )


def _secret_key(key: str) -> bool:
    name = key.lower().replace("-", "_")
    return name in _SECRET_KEYS or name.endswith(_SECRET_SUFFIXES)


def _is_code(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, str) and value.strip().isdigit()


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {k: _scrub_item(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item) for item in value]
    return value


def _scrub_item(key: Any, value: Any) -> Any:
    if value is None or value == "":
        return value
    if isinstance(key, str):
        if _secret_key(key):
            return REDACTED
        if key.lower() in _CODE_KEYS and _is_code(value):
            return REDACTED
    return _scrub(value)


def scrub_sensitive(_: Any, __: str, event_dict: structlog.types.EventDict) -> Any:
    """A structlog processor masking personal data and credentials in a log line.

    By key name (any depth): phones, one-time codes (a ``code`` of digits), tokens
    (``token``, ``*_token``), credentials, cookies, addresses and their lines, payment
    methods. By value (any string, the message and exception text included): JWTs,
    ``Bearer``/``Basic`` credentials, payment tokens (``tok_``, ``pm_``), Telegram bot
    tokens, ``start=``/``token=``/``code=`` query parameters, E.164 phone numbers and
    card numbers. Strings shorter than 8 characters and the keys every line carries are
    not scanned.
    """
    for key, value in event_dict.items():
        if key in _PLAIN_KEYS:
            continue
        event_dict[key] = _scrub_item(key, value)
    return event_dict
