"""Phone numbers: validated with libphonenumber and normalised to E.164."""

import re

import phonenumbers

__all__ = ["InvalidPhoneNumber", "normalise_contact_phone", "normalise_phone"]

# E.164 input only (a leading ``+``); separators people type are allowed. Letters are
# refused up front: libphonenumber would read "+1-800-FLOWERS" as digits.
_TYPED = re.compile(r"^\+[0-9][0-9 ().\-]{0,30}$")
# Telegram's contact numbers: digits, with or without the leading ``+``.
_CONTACT = re.compile(r"^\+?[0-9]{1,20}$")


class InvalidPhoneNumber(ValueError):
    """The text is not a phone number in international format."""


def normalise_phone(raw: str, *, strict: bool = False) -> str:
    """``+<country><number>`` (E.164) for a plausible number; ``strict`` also checks the plan."""
    text = raw.strip()
    if not _TYPED.match(text):
        raise InvalidPhoneNumber("expected an international number starting with +")
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        raise InvalidPhoneNumber("not a phone number") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidPhoneNumber("not a possible phone number for its country code")
    if strict and not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_contact_phone(raw: str) -> str:
    """E.164 of a Telegram contact's number (Telegram often sends it without the ``+``)."""
    text = raw.strip().replace(" ", "")
    if not _CONTACT.match(text):
        raise InvalidPhoneNumber("a contact's number is digits with an optional leading +")
    return normalise_phone(text if text.startswith("+") else f"+{text}")
