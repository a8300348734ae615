"""Vocabularies of internal routes that the serving service and its caller both spell.

Services never import each other; what one answers and another reads is written once
here, so that a new value cannot reach one side only.
"""

from typing import Literal

__all__ = ["ContactOutcome"]

#: Auth's answer to a Telegram chat's reply to the contact request
#: (``POST /internal/auth/telegram/contact``, called by notifications).
ContactOutcome = Literal[
    "code_sent",
    "contact_required",
    "not_own_contact",
    "invalid_phone",
    "phone_mismatch",
    "link_burned",
    "no_pending_link",
    "chat_taken",
    "not_allowed",
]
