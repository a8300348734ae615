"""Personal fields of the notifications database, encrypted at rest (docs/design.md §7).

``notification_log.chat_id`` holds an envelope-encrypted token
(:mod:`storefront_kit.encryption`); ``chat_index``, its blind index, is what the
once-per-(event, chat, kind) unique key and every lookup use.
"""

from storefront_kit.encryption import BlindIndex, CipherSlot, FieldCipher

__all__ = ["CHAT_CONTEXT", "FIELDS", "chat_index", "install"]

CHAT_CONTEXT = "notifications.notification_log.chat_id"


def _from_settings() -> tuple[FieldCipher, BlindIndex]:
    from notifications_service.settings import get_settings

    return get_settings().field_crypto()


#: The keys the encrypted columns use: the app's and CLI's settings, else the environment's.
FIELDS = CipherSlot("notifications", loader=_from_settings)


def install(cipher: FieldCipher, index: BlindIndex) -> None:
    """Use these keys for every encrypted column of the service."""
    FIELDS.install(cipher, index)


def chat_index(chat_id: int) -> bytes:
    """The blind index of a Telegram chat id."""
    return FIELDS.index.digest(chat_id, context=CHAT_CONTEXT)
