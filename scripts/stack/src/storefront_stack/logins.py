"""Log a customer in through the gateway as a person would, with the Telegram stand-in.

``otp/send`` → Start on the deep link (the bot asks for the contact) → the chat's user
shares their own contact (the number proves itself) → the code arrives in the chat →
``otp/verify``. For end-to-end tests and benchmarks; the local profile only.

Staff need no login for a test: :func:`user_token` mints an access token with the
platform's own user-token key, as auth would sign it.
"""

import asyncio
import re
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx

from jwt_core_lib import SigningKey, TokenIssuer

__all__ = [
    "CODE",
    "bearer",
    "customer_login",
    "messages",
    "new_chat_id",
    "new_phone",
    "telegram_login",
    "user_token",
    "wait_for_message",
]

CODE = re.compile(r"\b(\d{6})\b")
_CONTACT_REQUEST = re.compile("Share my phone number")


async def messages(client: httpx.AsyncClient, chat_id: int) -> list[dict[str, Any]]:
    """What the bot sent to ``chat_id``, oldest first."""
    response = await client.get("/sandbox/telegram/messages", params={"chat_id": chat_id})
    response.raise_for_status()
    listed: list[dict[str, Any]] = response.json()
    return listed


async def wait_for_message(
    client: httpx.AsyncClient,
    chat_id: int,
    pattern: re.Pattern[str],
    *,
    after: int = 0,
    deadline_s: float = 30.0,
) -> re.Match[str]:
    """The match of ``pattern`` in the first message to ``chat_id`` past the ``after`` first."""
    async with asyncio.timeout(deadline_s):
        while True:
            for message in (await messages(client, chat_id))[after:]:
                if match := pattern.search(message["text"]):
                    return match
            await asyncio.sleep(0.2)


async def telegram_login(
    client: httpx.AsyncClient, phone: str, chat_id: int, *, deadline_s: float = 30.0
) -> dict[str, Any]:
    """Tokens for ``phone`` (E.164), proven by ``chat_id`` (a chat no phone is linked to yet)."""
    before = len(await messages(client, chat_id))
    sent = await client.post("/api/v1/auth/otp/send", json={"phone": phone})
    assert sent.status_code == 202, sent.text
    token = sent.json()["telegram_link"].split("?start=", 1)[1]
    pressed = await client.post(
        "/sandbox/telegram/start", json={"chat_id": chat_id, "payload": token}
    )
    assert pressed.status_code == 200, pressed.text
    # the bot answers Start in the background: the contact must not overtake it
    await wait_for_message(client, chat_id, _CONTACT_REQUEST, after=before, deadline_s=deadline_s)
    asked = len(await messages(client, chat_id))
    # the user taps the request_contact button: Telegram sends their own number, no "+"
    shared = await client.post(
        "/sandbox/telegram/contact",
        json={"chat_id": chat_id, "phone_number": phone.removeprefix("+")},
    )
    assert shared.status_code == 200, shared.text
    code = await wait_for_message(client, chat_id, CODE, after=asked, deadline_s=deadline_s)
    verified = await client.post("/api/v1/auth/otp/verify", json={"phone": phone, "code": code[1]})
    assert verified.status_code == 200, verified.text
    return dict(verified.json())


def new_phone() -> str:
    """A random ``+1555`` number (E.164), most likely new to the platform."""
    return f"+1555{uuid.uuid4().int % 10**7:07d}"


def new_chat_id() -> int:
    """A random Telegram chat id of the 800,000s, most likely linked to no phone yet."""
    return 800_000 + uuid.uuid4().int % 100_000


async def customer_login(client: httpx.AsyncClient) -> str:
    """A new customer's access token (:func:`new_phone`, :func:`new_chat_id`), through
    OTP and the Telegram stand-in."""
    tokens = await telegram_login(client, new_phone(), new_chat_id())
    return str(tokens["access_token"])


def user_token(
    platform_env: Mapping[str, str],
    *roles: str,
    subject: str | None = None,
    ttl: timedelta = timedelta(minutes=30),
) -> str:
    """An access token for ``subject`` (a new id by default) with ``roles``, signed with
    the platform's user-token key (``AUTH_JWT_SIGNING_KEY`` of ``platform_env``)."""
    issuer = TokenIssuer(
        signing_key=SigningKey.from_pem(platform_env["AUTH_JWT_SIGNING_KEY"]),
        issuer="storefront-auth",
    )
    return issuer.issue(
        subject=subject or str(uuid.uuid4()), audience="storefront", ttl=ttl, roles=roles
    )


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header of ``token``."""
    return {"Authorization": f"Bearer {token}"}
