"""Personal fields of the auth database, encrypted at rest (docs/design.md §7).

``user_account.phone`` and ``user_account.telegram_chat_id`` hold envelope-encrypted
tokens (:mod:`storefront_kit.encryption`); ``phone_index`` and ``telegram_chat_index``
hold their blind indexes, which every lookup and unique constraint uses instead.
"""

from storefront_kit.encryption import BlindIndex, CipherSlot, FieldCipher

__all__ = ["CHAT_CONTEXT", "FIELDS", "PHONE_CONTEXT", "chat_index", "install", "phone_index"]

PHONE_CONTEXT = "auth.user_account.phone"
CHAT_CONTEXT = "auth.user_account.telegram_chat_id"


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
