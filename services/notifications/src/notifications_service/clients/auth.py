"""Calls to auth's internal API, each with a service token minted for the ``auth`` audience."""

from typing import Literal, TypeVar
from uuid import UUID

import httpx
from pydantic import BaseModel, ValidationError

from storefront_kit.contracts import ContactOutcome

__all__ = [
    "AuthClient",
    "AuthUnavailable",
    "Contact",
    "ContactOutcome",
    "ContactResult",
    "StartOutcome",
    "UnknownUser",
]

StartOutcome = Literal["contact_requested", "invalid_token"]
#: Longest contact number passed on; a longer one is no phone number either way.
MAX_CONTACT_PHONE = 64
#: Telegram user ids fit in 52 bits (auth refuses anything else).
_MAX_ID = 2**52
_Answer = TypeVar("_Answer", bound=BaseModel)


class AuthUnavailable(Exception):
    """Auth could not answer (transport error, 5xx, or an answer we cannot read)."""


class UnknownUser(Exception):
    """Auth knows no such user."""


class _Outcome(BaseModel):
    outcome: StartOutcome


class ContactResult(BaseModel):
    """What auth made of a reply to the contact request."""

    outcome: ContactOutcome
    attempts_left: int | None = None


class Contact(BaseModel):
    """``message.contact``: the number and, for a Telegram user's card, their id."""

    phone_number: str
    user_id: int | None = None


class _Chat(BaseModel):
    user_id: UUID
    chat_id: int | None


def _read(response: httpx.Response, model: type[_Answer], what: str) -> _Answer:
    """Auth's successful answer about ``what``; anything else is :class:`AuthUnavailable`
    (an answer that does not parse too: an unknown outcome is no outcome)."""
    if not response.is_success:
        raise AuthUnavailable(f"{what} answered {response.status_code}")
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise AuthUnavailable(f"{what} answered an unreadable body") from exc


class AuthClient:
    """``/internal/auth``: report Start presses, look up a user's Telegram chat."""

    def __init__(
        self, *, client: httpx.AsyncClient, auth: httpx.Auth, base_url: str, timeout_s: float
    ) -> None:
        self._client = client
        self._auth = auth
        self._base = f"{base_url}/internal/auth"
        self._timeout = timeout_s

    async def _call(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        try:
            return await self._client.request(
                method,
                self._base + path,
                auth=self._auth,
                timeout=self._timeout,
                **kwargs,  # type: ignore[arg-type]
            )
        except httpx.HTTPError as exc:
            raise AuthUnavailable(f"{method} {path}: {type(exc).__name__}") from exc

    async def telegram_start(self, *, token: str, chat_id: int) -> StartOutcome:
        """Tell auth a chat pressed Start on a login link; auth sends the code itself."""
        response = await self._call(
            "POST", "/telegram/start", json={"token": token, "chat_id": chat_id}
        )
        if response.status_code == 422:
            # A token auth's own rules refuse is as good as an unknown one.
            return "invalid_token"
        return _read(response, _Outcome, "telegram/start").outcome

    async def telegram_contact(
        self, *, chat_id: int, sender_id: int, contact: Contact | None
    ) -> ContactResult:
        """Tell auth what a chat replied after Start (its contact, or None for anything else)."""
        body: dict[str, object] = {"chat_id": chat_id, "sender_id": sender_id, "contact": None}
        if contact is not None:
            body["contact"] = {
                "phone_number": contact.phone_number[:MAX_CONTACT_PHONE] or "?",
                "user_id": contact.user_id
                if contact.user_id is not None and abs(contact.user_id) <= _MAX_ID
                else None,
            }
        response = await self._call("POST", "/telegram/contact", json=body)
        return _read(response, ContactResult, "telegram/contact")

    async def chat_of(self, user_id: UUID) -> int | None:
        """The user's linked chat, or None (:class:`UnknownUser` when auth has no such user)."""
        response = await self._call("GET", f"/users/{user_id}/telegram")
        if response.status_code == 404:
            raise UnknownUser(str(user_id))
        return _read(response, _Chat, "users/telegram").chat_id
