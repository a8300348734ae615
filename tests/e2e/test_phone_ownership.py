"""Phone ownership through the gateway, played on the Telegram stand-in (issue 16).

A new user logs in by sharing their own contact; claiming someone else's number fails in
every variant (someone else's card, a typed number, one's own other number, a contact
for another link, a replayed link); a staff phone never yields a code to a stranger; and
``otp/send`` answers alike whatever it is asked about.
"""

import re
import uuid
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from auth_service.fields import PHONE_CONTEXT
from storefront_seed.users import auth_settings, create_staff
from storefront_stack.logins import CODE, messages, new_phone, telegram_login, wait_for_message
from storefront_stack.platform import Platform

pytestmark = pytest.mark.e2e

DEADLINE_S = 30.0


def _chat() -> int:
    return 600_000 + uuid.uuid4().int % 100_000


class AuthRedis:
    """The platform's Redis as auth keys it: phones appear in key names as the blind
    index under auth's own key (``auth_service.fields.phone_key``), never as numbers."""

    def __init__(self, redis: Redis, platform: Platform) -> None:
        self.redis = redis
        self._index = auth_settings(platform.service_env("auth")).field_crypto()[1]

    def phone_key(self, phone: str) -> str:
        return self._index.digest(phone, context=PHONE_CONTEXT).hex()


@pytest.fixture
async def redis(platform: Platform) -> Any:
    assert platform.endpoints is not None
    async with Redis.from_url(platform.endpoints.redis_url) as redis:
        yield AuthRedis(redis, platform)


async def _link(client: httpx.AsyncClient, redis: AuthRedis, phone: str) -> str:
    """A fresh deep link for ``phone`` (the resend cooldown skipped: tests do not wait 30 s)."""
    assert await redis.redis.exists(f"auth:otp:cooldown:{phone}") == 0  # never the number
    await redis.redis.delete(f"auth:otp:cooldown:{redis.phone_key(phone)}")
    sent = await client.post("/api/v1/auth/otp/send", json={"phone": phone})
    assert sent.status_code == 202, sent.text
    token: str = sent.json()["telegram_link"].split("?start=", 1)[1]
    return token


async def _play(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> None:
    response = await client.post(f"/sandbox/telegram/{path}", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["delivered"] is True


async def _reply_to(
    client: httpx.AsyncClient, chat_id: int, path: str, body: dict[str, Any], expected: str
) -> dict[str, Any]:
    """Play one step in ``chat_id`` and wait for the bot's answer, which says ``expected``."""
    before = len(await messages(client, chat_id))
    await _play(client, path, {"chat_id": chat_id, **body})
    await wait_for_message(
        client, chat_id, re.compile(re.escape(expected)), after=before, deadline_s=DEADLINE_S
    )
    return (await messages(client, chat_id))[-1]


async def _press_start(
    client: httpx.AsyncClient, redis: AuthRedis, chat_id: int, phone: str
) -> None:
    """Start pressed in ``chat_id`` on a fresh link for ``phone``: the bot asks for a contact."""
    await _reply_to(
        client,
        chat_id,
        "start",
        {"payload": await _link(client, redis, phone)},
        "Share my phone number",
    )


async def test_a_new_user_logs_in_by_sharing_their_own_contact(client: httpx.AsyncClient) -> None:
    phone, chat_id = new_phone(), _chat()

    tokens = await telegram_login(client, phone, chat_id, deadline_s=DEADLINE_S)
    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    sent = await messages(client, chat_id)

    assert me.status_code == 200, me.text
    assert (me.json()["phone"], me.json()["telegram_linked"]) == (phone, True)
    asked = next(m for m in sent if "Share my phone number" in m["text"])
    assert asked["reply_markup"]["keyboard"] == [
        [{"text": "📱 Share my phone number", "request_contact": True}]
    ]
    assert asked["reply_markup"]["one_time_keyboard"] is True
    assert any(m["reply_markup"] == {"remove_keyboard": True} for m in sent)


async def test_claiming_someone_elses_number_fails_in_every_variant(
    client: httpx.AsyncClient, redis: AuthRedis
) -> None:
    victim_phone, victim_chat = new_phone(), _chat()
    attacker_phone, attacker_chat = new_phone(), _chat()

    # someone else's card, a typed number, the attacker's own other number
    await _press_start(client, redis, attacker_chat, victim_phone)
    foreign = await _reply_to(
        client,
        attacker_chat,
        "contact",
        {"phone_number": victim_phone, "user_id": victim_chat},
        "not your own contact",
    )
    typed = await _reply_to(client, attacker_chat, "send", {"text": victim_phone}, "typed numbers")
    own_other = await _reply_to(
        client,
        attacker_chat,
        "contact",
        {"phone_number": attacker_phone.removeprefix("+")},
        "Too many failed attempts",  # the third refusal burns the link
    )
    assert "attempts left" in foreign["text"]
    assert typed["reply_markup"]["keyboard"][0][0]["request_contact"] is True
    assert own_other["reply_markup"] == {"remove_keyboard": True}

    # a contact for another link: the attacker proves their own number on their own link
    # after pressing Start on the victim's; what arrives works for the attacker's number only
    for phone in (victim_phone, attacker_phone):
        await _press_start(client, redis, attacker_chat, phone)
    before = len(await messages(client, attacker_chat))
    await _play(
        client,
        "contact",
        {"chat_id": attacker_chat, "phone_number": attacker_phone.removeprefix("+")},
    )
    attackers_code = await wait_for_message(
        client, attacker_chat, CODE, after=before, deadline_s=DEADLINE_S
    )
    wrong_phone = await client.post(
        "/api/v1/auth/otp/verify", json={"phone": victim_phone, "code": attackers_code[1]}
    )
    assert wrong_phone.status_code == 401, wrong_phone.text

    # the victim logs in; the attacker replays the victim's link afterwards
    victim_link = await _link(client, redis, victim_phone)
    await _play(client, "start", {"chat_id": victim_chat, "payload": victim_link})
    await wait_for_message(client, victim_chat, re.compile("Share my phone number"))
    await _play(client, "contact", {"chat_id": victim_chat, "phone_number": victim_phone})
    code = await wait_for_message(client, victim_chat, CODE, deadline_s=DEADLINE_S)
    verified = await client.post(
        "/api/v1/auth/otp/verify", json={"phone": victim_phone, "code": code[1]}
    )
    assert verified.status_code == 200, verified.text
    replayed = await _reply_to(
        client,
        attacker_chat,
        "start",
        {"payload": victim_link},
        "expired or was already used",
    )
    assert replayed["reply_markup"] is None

    # the victim's chat is linked; the only code the attacker ever saw is their own
    seen = [
        match[1] for m in await messages(client, attacker_chat) if (match := CODE.search(m["text"]))
    ]
    assert seen == [attackers_code[1]]
    me = await client.get(
        "/api/v1/users/me",
        headers={"Authorization": f"Bearer {verified.json()['access_token']}"},
    )
    assert me.json()["telegram_linked"] is True


async def test_a_staff_phone_never_yields_a_code_to_a_stranger(
    platform: Platform, client: httpx.AsyncClient, redis: AuthRedis
) -> None:
    staff_phone, staff_chat, stranger = new_phone(), _chat(), _chat()
    await create_staff(platform, phone=staff_phone, chat_id=staff_chat, role="moderator")

    await _press_start(client, redis, stranger, staff_phone)
    # even a forged card claiming to be the stranger's own with the staff number
    refused = await _reply_to(
        client,
        stranger,
        "contact",
        {"phone_number": staff_phone.removeprefix("+")},
        "ask a Storefront administrator",
    )
    staff_codes = await wait_for_message(client, staff_chat, CODE, deadline_s=DEADLINE_S)

    assert refused["reply_markup"] == {"remove_keyboard": True}
    assert not any(CODE.search(m["text"]) for m in await messages(client, stranger))
    assert staff_codes  # the staff member's own chat got the code of that send


async def test_otp_send_answers_alike_for_known_and_unknown_phones(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    known, unknown = new_phone(), new_phone()
    await create_staff(platform, phone=known, chat_id=_chat())

    first = [
        await client.post("/api/v1/auth/otp/send", json={"phone": phone})
        for phone in (known, unknown)
    ]
    again = [
        await client.post("/api/v1/auth/otp/send", json={"phone": phone})
        for phone in (known, unknown)
    ]

    shapes = set()
    for response in first:
        body = response.json()
        link = body["telegram_link"]
        token = link.split("?start=", 1)[1]
        shapes.add(
            (
                response.status_code,
                response.headers["content-type"],
                tuple(sorted(body)),
                body["expires_in"],
                body["resend_in"],
                link.removesuffix(token),
                len(token),
            )
        )
    assert len(shapes) == 1, shapes
    assert next(iter(shapes))[0] == 202
    assert [(r.status_code, r.json()["code"]) for r in again] == [(429, "otp_cooldown")] * 2
