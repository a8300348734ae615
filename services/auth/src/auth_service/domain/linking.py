"""Proof that a Telegram chat owns a phone: the sender's own contact with that number.

Telegram fills ``contact.user_id`` only for a contact card of a Telegram user, and a
user sharing their *own* contact (the ``request_contact`` button) sends the number
Telegram verified for their account with ``contact.user_id == from.id``. Anyone can
forward someone else's card or type a number; neither proves anything.
"""

import enum

from auth_service.domain.phones import InvalidPhoneNumber, normalise_contact_phone

__all__ = ["ContactVerdict", "judge_contact"]


class ContactVerdict(enum.Enum):
    """What a reply to the contact request proves."""

    PROVEN = enum.auto()
    NO_CONTACT = enum.auto()  # typed text instead of the button
    NOT_OWN = enum.auto()  # someone else's card, or a card with no Telegram user
    INVALID_PHONE = enum.auto()  # not a number we can read as E.164
    MISMATCH = enum.auto()  # the sender's own number, but not the one being proven


def judge_contact(
    *,
    sender_id: int,
    contact_user_id: int | None,
    contact_phone: str | None,
    expected_phone: str,
) -> ContactVerdict:
    """Whether the sender proved ``expected_phone`` (E.164) with this contact (or its absence)."""
    if contact_phone is None:
        return ContactVerdict.NO_CONTACT
    if contact_user_id is None or contact_user_id != sender_id:
        return ContactVerdict.NOT_OWN
    try:
        phone = normalise_contact_phone(contact_phone)
    except InvalidPhoneNumber:
        return ContactVerdict.INVALID_PHONE
    if phone != expected_phone:
        return ContactVerdict.MISMATCH
    return ContactVerdict.PROVEN
