"""OTP login: send, verify, attempts, expiry, cooldown, rate limits, bad input."""

import asyncio
from typing import Any

import httpx
import pytest

from auth_service.fields import phone_index, phone_key
from jwt_core_lib import StaticKeySource, TokenVerifier, public_key_from_jwk

from .conftest import Auth, link_token, new_chat_id, new_phone, problem

# On one Redis server and on a three-master Redis Cluster (docs/redis.md).
pytestmark = pytest.mark.redis_modes


async def _keys(auth: Auth) -> set[str]:
    """Every key (on every master of a cluster) but the audit consumer's stream, which
    its group creates in the background whenever the app starts."""
    return {key async for key in auth.redis.scan_iter(count=1000)} - {"audit.events"}


async def _linked_user(auth: Auth) -> tuple[str, int]:
    """A user whose phone already has a FINAL chat (so codes go straight there)."""
    phone, chat_id = new_phone(), new_chat_id()
    await auth.login(phone, chat_id)
    await auth.allow_resend(phone)
    return phone, chat_id


async def _verifier_from_jwks(client: httpx.AsyncClient) -> TokenVerifier:
    jwks = (await client.get("/.well-known/jwks.json")).json()
    keys = [(jwk["kid"], public_key_from_jwk(jwk)) for jwk in jwks["keys"]]
    return TokenVerifier(
        key_source=StaticKeySource(keys), issuer="storefront-auth", audience="storefront"
    )


async def test_first_login_creates_a_customer_and_returns_tokens_that_verify_with_the_jwks(
    auth: Auth,
) -> None:
    phone, chat_id = "+1 (555) 010-" + new_phone()[-4:], new_chat_id()
    e164 = "+1555010" + phone[-4:]
    assert await auth.user_row(e164) is None

    sent = await auth.send(phone)
    assert sent.status_code == 202
    body = sent.json()
    assert body["expires_in"] == 300
    assert body["resend_in"] == 30
    assert body["telegram_link"].startswith("https://t.me/storefront_sandbox_bot?start=")
    await auth.prove(link_token(body["telegram_link"]), chat_id, e164)
    delivered = await auth.notifications.wait_for(e164)
    assert delivered["chat_id"] == chat_id
    assert delivered["caller"] == "auth"  # a service token minted for notifications
    assert len(delivered["code"]) == 6
    assert delivered["code"].isdigit()

    verified = await auth.verify(e164, delivered["code"])
    assert verified.status_code == 200, verified.text
    assert verified.headers["cache-control"] == "no-store"
    tokens = verified.json()
    assert set(tokens) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 900

    user = await auth.user_row(e164)
    assert user is not None
    assert user["roles"] == ["customer"]
    assert user["telegram_chat_id"] == chat_id
    assert user["last_login_at"] is not None
    claims = await (await _verifier_from_jwks(auth.client)).verify(tokens["access_token"])
    assert claims.subject == str(user["id"])
    assert claims.roles == ("customer",)
    assert claims.key_id == auth.keys.user_key.kid
    assert (claims.expires_at - claims.issued_at).total_seconds() == 900
    assert user["id"].version == 7  # time-ordered ids

    stored = await auth.scalar(
        "SELECT token_hash FROM refresh_token WHERE user_id = :id", {"id": user["id"]}
    )
    assert stored != tokens["refresh_token"]  # only the hash is kept
    assert len(stored) == 64


async def test_only_a_hash_of_the_code_is_kept_in_redis_with_a_ttl(auth: Auth) -> None:
    phone, _ = await _linked_user(auth)
    assert (await auth.send(phone)).status_code == 202
    code = (await auth.notifications.wait_for(phone, count=2))["code"]

    stored = await auth.redis.hgetall(f"auth:otp:code:{phone_key(phone)}")
    assert stored["a"] == "0"
    assert code not in stored["d"]
    assert len(stored["d"]) == 64
    ttl = await auth.redis.ttl(f"auth:otp:code:{phone_key(phone)}")
    assert 290 <= ttl <= 300


async def test_a_linked_phone_gets_its_code_in_its_chat_and_the_same_answer(auth: Auth) -> None:
    phone, chat_id = await _linked_user(auth)

    sent = await auth.send(phone)
    delivered = await auth.notifications.wait_for(phone, count=2)
    verified = await auth.verify(phone, delivered["code"])

    assert sent.status_code == 202
    assert set(sent.json()) == {"expires_in", "resend_in", "telegram_link"}
    assert (sent.json()["expires_in"], sent.json()["resend_in"]) == (300, 30)
    assert link_token(sent.json()["telegram_link"])  # a link like anyone's (no oracle)
    assert delivered["chat_id"] == chat_id
    assert verified.status_code == 200
    assert (
        await auth.scalar(
            "SELECT count(*) FROM user_account WHERE phone_index = :p", {"p": phone_index(phone)}
        )
        == 1
    )


async def test_a_code_works_once(auth: Auth) -> None:
    phone, _ = await _linked_user(auth)
    await auth.send(phone)
    code = (await auth.notifications.wait_for(phone, count=2))["code"]

    first = await auth.verify(phone, code)
    second = await auth.verify(phone, code)

    assert first.status_code == 200
    problem(second, 401, "otp_expired")


async def test_five_wrong_codes_kill_the_code_even_for_the_right_one(auth: Auth) -> None:
    phone, _ = await _linked_user(auth)
    await auth.send(phone)
    code = (await auth.notifications.wait_for(phone, count=2))["code"]
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"

    answers = [await auth.verify(phone, wrong) for _ in range(5)]
    right = await auth.verify(phone, code)

    assert [problem(a, 401, "otp_invalid")["attempts_left"] for a in answers] == [4, 3, 2, 1, 0]
    problem(right, 401, "otp_locked")
    tokens = await auth.scalar(
        "SELECT count(*) FROM refresh_token r JOIN user_account u ON u.id = r.user_id"
        " WHERE u.phone_index = :p",
        {"p": phone_index(phone)},
    )
    assert tokens == 1  # only the login of _linked_user


async def test_concurrent_guesses_cannot_test_more_codes_than_the_attempt_limit(
    auth: Auth,
) -> None:
    phone, _ = await _linked_user(auth)
    await auth.send(phone)
    code = (await auth.notifications.wait_for(phone, count=2))["code"]
    guesses = [f"{(int(code) + i) % 1_000_000:06d}" for i in range(1, 21)]

    answers = await asyncio.gather(*(auth.verify(phone, guess) for guess in guesses))

    codes = sorted(a.json()["code"] for a in answers)
    assert codes.count("otp_invalid") == 5
    assert codes.count("otp_locked") == 15
    assert await auth.redis.hget(f"auth:otp:code:{phone_key(phone)}", "a") == "5"


async def test_four_wrong_codes_then_the_right_one_still_logs_in(auth: Auth) -> None:
    phone, _ = await _linked_user(auth)
    await auth.send(phone)
    code = (await auth.notifications.wait_for(phone, count=2))["code"]
    wrong = f"{(int(code) + 7) % 1_000_000:06d}"

    for _ in range(4):
        problem(await auth.verify(phone, wrong), 401, "otp_invalid")
    assert (await auth.verify(phone, code)).status_code == 200


async def test_an_expired_code_is_refused(auth: Auth) -> None:
    phone, _ = await _linked_user(auth)
    await auth.send(phone)
    code = (await auth.notifications.wait_for(phone, count=2))["code"]
    await auth.redis.pexpire(f"auth:otp:code:{phone_key(phone)}", 1)  # let Redis expire it now
    await asyncio.sleep(0.05)

    problem(await auth.verify(phone, code), 401, "otp_expired")


async def test_verify_without_any_code_sent(auth: Auth) -> None:
    body = problem(await auth.verify(new_phone(), "123456"), 401, "otp_expired")
    assert body["type"] == "https://storefront.dev/problems/otp-expired"


async def test_a_second_send_within_the_cooldown_is_429_with_retry_after(auth: Auth) -> None:
    phone, _ = await _linked_user(auth)
    first = await auth.send(phone)
    second = await auth.send(phone)

    assert first.status_code == 202
    body = problem(second, 429, "otp_cooldown")
    assert 25 <= int(second.headers["retry-after"]) <= 30
    assert body["detail"]
    await asyncio.sleep(0.1)
    assert len(auth.notifications.for_phone(phone)) == 2  # the login's and the first send's


def _shape(response: httpx.Response) -> tuple[Any, ...]:
    """What a caller can compare between two answers (the link's token is random)."""
    body = response.json()
    link = body.get("telegram_link")
    token = link_token(link) if link else None
    return (
        response.status_code,
        response.headers["content-type"],
        tuple(sorted(body)),
        body.get("expires_in"),
        body.get("resend_in"),
        link.removesuffix(token) if link and token else link,
        len(token) if token else None,
        body.get("code"),
        "retry-after" in response.headers,
    )


async def test_send_answers_alike_for_unknown_unlinked_linked_and_staff_phones(
    auth: Auth,
) -> None:
    """No registration oracle: the caller cannot tell what it asked about."""
    unknown = new_phone()
    unlinked = new_phone()
    await auth.insert_user(unlinked)
    linked, _ = await _linked_user(auth)
    staff = new_phone()
    await auth.insert_user(staff, roles=["admin", "customer"], chat_id=new_chat_id())
    phones = [unknown, unlinked, linked, staff]

    first = [await auth.send(phone) for phone in phones]
    cooldown = [await auth.send(phone) for phone in phones]

    assert {_shape(r) for r in first} == {
        (
            202,
            "application/json",
            ("expires_in", "resend_in", "telegram_link"),
            300,
            30,
            "https://t.me/storefront_sandbox_bot?start=",
            32,
            None,
            False,
        )
    }
    assert len({_shape(r) for r in cooldown}) == 1  # the same cooldown for each of them
    assert cooldown[0].status_code == 429
    # what differs is only where a code went: the linked chats got one
    await auth.notifications.wait_for(staff)
    assert auth.notifications.for_phone(unknown) == auth.notifications.for_phone(unlinked) == []


async def test_rate_limits_apply_alike_to_known_and_unknown_phones(start_auth: Any) -> None:
    async with start_auth(otp_phone_rate_limit="1/10minutes") as auth:
        linked, unknown = new_phone(), new_phone()
        await auth.insert_user(linked, chat_id=new_chat_id())
        answers = {}
        for phone in (linked, unknown):
            await auth.send(phone)
            await auth.allow_resend(phone)
            answers[phone] = await auth.send(phone)

    assert _shape(answers[linked]) == _shape(answers[unknown])
    assert problem(answers[unknown], 429, "otp_rate_limited")["scope"] == "phone"


async def test_the_per_phone_limit_is_429_with_retry_after(start_auth: Any) -> None:
    async with start_auth(otp_phone_rate_limit="2/10minutes") as auth:
        phone = new_phone()
        answers = []
        for _ in range(3):
            answers.append(await auth.send(phone))
            await auth.allow_resend(phone)

        assert [a.status_code for a in answers[:2]] == [202, 202]
        body = problem(answers[2], 429, "otp_rate_limited")
        assert body["scope"] == "phone"
        assert 590 <= int(answers[2].headers["retry-after"]) <= 600
        # another phone from the same client is not affected
        assert (await auth.send(new_phone())).status_code == 202


async def test_the_per_ip_limit_is_429_and_other_clients_go_on(start_auth: Any) -> None:
    async with start_auth(otp_ip_rate_limit="3/10minutes") as auth:
        answers = [await auth.send(new_phone(), ip="203.0.113.7") for _ in range(4)]
        other_client = await auth.send(new_phone(), ip="198.51.100.9")

    assert [a.status_code for a in answers[:3]] == [202, 202, 202]
    assert problem(answers[3], 429, "otp_rate_limited")["scope"] == "ip"
    assert int(answers[3].headers["retry-after"]) > 0
    assert other_client.status_code == 202


async def test_limits_are_shared_between_replicas(start_auth: Any) -> None:
    async with (
        start_auth(otp_ip_rate_limit="2/10minutes") as one,
        start_auth(otp_ip_rate_limit="2/10minutes") as two,
    ):
        a = await one.send(new_phone(), ip="192.0.2.1")
        b = await two.send(new_phone(), ip="192.0.2.1")
        c = await one.send(new_phone(), ip="192.0.2.1")
        phone = new_phone()
        d = await two.send(phone, ip="192.0.2.2")
        e = await one.send(phone, ip="192.0.2.3")

    assert [a.status_code, b.status_code] == [202, 202]
    problem(c, 429, "otp_rate_limited")
    assert d.status_code == 202
    problem(e, 429, "otp_cooldown")


async def _keys(auth: Auth) -> set[str]:
    # Without the audit consumer's stream: it creates it in the background at start-up,
    # maybe only after the test looked.
    return {key for key in await auth.redis.keys("*") if key != "audit.events"}


async def test_a_malformed_phone_is_422_and_changes_nothing(auth: Auth) -> None:
    keys_before = await _keys(auth)
    for phone in ["5550000001", "+1555", "+1-800-FLOWERS", "+999123", "+15550000001234", "++1"]:
        body = problem(await auth.send(phone), 422, "invalid_phone")
        assert body["detail"]
    problem(await auth.verify("not a phone", "123456"), 422, "invalid_phone")
    assert await _keys(auth) == keys_before


async def test_unknown_fields_and_bad_sizes_are_422_and_change_nothing(auth: Auth) -> None:
    keys_before = await _keys(auth)
    phone = new_phone()
    cases = [
        ("/api/v1/auth/otp/send", {"phone": phone, "admin": True}),
        ("/api/v1/auth/otp/send", {"phone": "+1" + "5" * 5000}),
        ("/api/v1/auth/otp/send", {}),
        ("/api/v1/auth/otp/send", {"phone": 15550000001}),
        ("/api/v1/auth/otp/verify", {"phone": phone, "code": "123456", "roles": ["admin"]}),
        ("/api/v1/auth/otp/verify", {"phone": phone, "code": "12345"}),
        ("/api/v1/auth/otp/verify", {"phone": phone, "code": "abcdef"}),
        ("/api/v1/auth/otp/verify", {"phone": phone, "code": 123456}),
    ]
    for path, body in cases:
        response = await auth.client.post(path, json=body)
        problem(response, 422, "validation_error")
        assert response.json()["errors"], body
    assert await _keys(auth) == keys_before
    assert await auth.user_row(phone) is None


async def test_the_api_answers_202_when_notifications_is_down(start_auth: Any) -> None:
    from storefront_stack.processes import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    async with start_auth(notifications_url=dead, notifications_max_attempts=2) as auth:
        phone, chat_id = new_phone(), new_chat_id()
        sent = await auth.send(phone)
        await auth.prove(link_token(sent.json()["telegram_link"]), chat_id, phone)
        assert sent.status_code == 202
        assert await auth.redis.exists(f"auth:otp:code:{phone_key(phone)}") == 1


async def test_delivery_is_retried_when_notifications_fails_for_a_moment(auth: Auth) -> None:
    phone, chat_id = new_phone(), new_chat_id()
    auth.notifications.fail_next = 1
    sent = await auth.send(phone)
    await auth.prove(link_token(sent.json()["telegram_link"]), chat_id, phone)
    delivered = await auth.notifications.wait_for(phone)

    assert auth.notifications.calls == 2
    assert (await auth.verify(phone, delivered["code"])).status_code == 200


async def test_every_answer_carries_a_request_id(auth: Auth) -> None:
    response = await auth.send(new_phone())
    assert response.headers["x-request-id"]
