"""Personal fields of the auth database, encrypted at rest (docs/design.md §7).

``user_account.phone`` and ``user_account.telegram_chat_id`` hold envelope-encrypted
tokens (:mod:`storefront_kit.encryption`); ``phone_index`` and ``telegram_chat_index``
hold their blind indexes, which every lookup and unique constraint uses instead.

The short-lived OTP state in Redis never holds a number either: key names carry the
phone's blind index (:func:`phone_key`) and a link token's phone is sealed with the same
keys (:func:`seal_phone`), so a Redis dump, ``MONITOR`` or a slow log shows no phone.
"""

import base64
import hashlib

from storefront_kit.encryption import BlindIndex, CipherSlot, FieldCipher

__all__ = [
    "CHAT_CONTEXT",
    "FIELDS",
    "PHONE_CONTEXT",
    "chat_index",
    "install",
    "phone_index",
    "phone_key",
    "seal_phone",
    "unseal_phone",
]

PHONE_CONTEXT = "auth.user_account.phone"
CHAT_CONTEXT = "auth.user_account.telegram_chat_id"
_REDIS_PHONE_CONTEXT = "auth.redis.phone"


def _from_settings() -> tuple[FieldCipher, BlindIndex]:
    from auth_service.settings import get_settings

    return get_settings().field_crypto()


#: The keys the encrypted columns use: the app's and CLI's settings, else the environment's.
FIELDS = CipherSlot("auth", loader=_from_settings)


def install(cipher: FieldCipher, index: BlindIndex) -> None:
    """Use these keys for every encrypted column of the service."""
    FIELDS.install(cipher, index)


def phone_index(phone: str) -> bytes:
    """The blind index of an E.164 phone number."""
    return FIELDS.index.digest(phone, context=PHONE_CONTEXT)


def chat_index(chat_id: int) -> bytes:
    """The blind index of a Telegram chat id."""
    return FIELDS.index.digest(chat_id, context=CHAT_CONTEXT)


def phone_key(phone: str) -> str:
    """The phone as Redis key names (OTP codes, cooldowns, rate limits) carry it."""
    return phone_index(phone).hex()


def phone_ref(index: bytes) -> str:
    """The pseudonym other services see for a phone (the access token's ``phone_ref``).

    Derived from the phone's blind index (a keyed hash, so it names no number and cannot
    be recomputed without auth's index key) and hashed once more, domain-separated, so it
    is not the index auth's rows carry either. The same phone gives the same reference for
    every account it ever had: orders' fraud rules count checkouts by it
    (``velocity_phone``), across an account erased and opened again.
    """
    return hashlib.sha256(b"storefront-phone-ref\x00" + index).hexdigest()[:32]


def seal_phone(phone: str) -> str:
    """The phone encrypted for a Redis value (a link token's), URL-safe text."""
    token = FIELDS.cipher.encrypt_text(phone, context=_REDIS_PHONE_CONTEXT)
    return base64.urlsafe_b64encode(token).decode("ascii")


def unseal_phone(sealed: str) -> str:
    """The phone :func:`seal_phone` sealed."""
    token = base64.urlsafe_b64decode(sealed.encode("ascii"))
    return FIELDS.cipher.decrypt_text(token, context=_REDIS_PHONE_CONTEXT)
