"""Rate limits of code checks and token refreshes: per phone, per address, across replicas.

(The limits of ``otp/send`` and its cooldown are in ``test_otp``.)
"""

from typing import Any

import httpx
import pytest

from auth_service.fields import phone_key

from .conftest import (
    Auth,
    Keys,
    Notifications,
    link_token,
    new_chat_id,
    new_phone,
    problem,
    running,
    settings_for,
)

# On one Redis server and on a three-master Redis Cluster (docs/redis.md).
pytestmark = pytest.mark.redis_modes

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


async def _verify(auth: Auth, phone: str, code: str, *, ip: str) -> httpx.Response:
    return await auth.client.post(
        "/api/v1/auth/otp/verify", json={"phone": phone, "code": code}, headers={"X-Real-IP": ip}
    )


async def _refresh(auth: Auth, refresh_token: str, *, ip: str) -> httpx.Response:
    return await auth.client.post(
        "/api/v1/auth/token/refresh",
        json={"refresh_token": refresh_token},
        headers={"X-Real-IP": ip},
    )


def _limited(response: httpx.Response, scope: str) -> None:
    body = problem(response, 429, "rate_limited")
    assert body["scope"] == scope
    assert int(response.headers["retry-after"]) > 0


async def test_code_checks_per_phone_are_limited_and_the_refusal_costs_no_attempt(
    start_auth: Any,
) -> None:
    async with start_auth(otp_verify_phone_rate_limit="3/10minutes") as auth:
        phone, chat_id = new_phone(), new_chat_id()
        sent = await auth.send(phone)
        await auth.prove(link_token(sent.json()["telegram_link"]), chat_id, phone)
        code = (await auth.notifications.wait_for(phone))["code"]
        wrong = "000000" if code != "000000" else "111111"
        # Every check from another address: the phone's budget is what runs out.
        guesses = [await _verify(auth, phone, wrong, ip=f"192.0.2.{n}") for n in range(3)]
        right = await _verify(auth, phone, code, ip="192.0.2.4")
        attempts = await auth.redis.hget(f"auth:otp:code:{phone_key(phone)}", "a")
        other_phone = await _verify(auth, new_phone(), wrong, ip="192.0.2.9")

    assert [g.status_code for g in guesses] == [401, 401, 401]
    _limited(right, "phone")
    assert attempts in (b"3", "3")  # the refused check tested no code
    problem(other_phone, 401, "otp_expired")  # another phone has its own budget


async def test_code_checks_per_address_are_limited_and_other_clients_go_on(
    start_auth: Any,
) -> None:
    async with start_auth(otp_verify_ip_rate_limit="2/10minutes") as auth:
        checks = [await _verify(auth, new_phone(), "123456", ip="203.0.113.7") for _ in range(3)]
        other_client = await _verify(auth, new_phone(), "123456", ip="198.51.100.9")

    assert [c.status_code for c in checks[:2]] == [401, 401]
    _limited(checks[2], "ip")
    problem(other_client, 401, "otp_expired")


async def test_a_malformed_phone_is_422_before_any_limit_is_counted(start_auth: Any) -> None:
    async with start_auth(otp_verify_ip_rate_limit="1/10minutes") as auth:
        bad = [await _verify(auth, "not-a-phone", "123456", ip="203.0.113.8") for _ in range(3)]
        good = await _verify(auth, new_phone(), "123456", ip="203.0.113.8")

    assert {b.status_code for b in bad} == {422}
    problem(good, 401, "otp_expired")


async def test_refreshes_per_address_are_limited_and_other_clients_go_on(
    start_auth: Any,
) -> None:
    async with start_auth(refresh_ip_rate_limit="2/10minutes") as auth:
        tokens = await auth.login(new_phone(), new_chat_id())
        junk = [await _refresh(auth, "x" * 43, ip="203.0.113.7") for _ in range(2)]
        refused = await _refresh(auth, tokens["refresh_token"], ip="203.0.113.7")
        elsewhere = await _refresh(auth, tokens["refresh_token"], ip="198.51.100.9")

    assert {j.status_code for j in junk} == {401}
    _limited(refused, "ip")
    # The refused request did not spend the token: it still rotates from another address.
    assert elsewhere.status_code == 200, elsewhere.text


async def test_two_replicas_share_one_budget_for_code_checks_and_refreshes(
    start_auth: Any,
) -> None:
    limits = {"otp_verify_phone_rate_limit": "2/10minutes", "refresh_ip_rate_limit": "2/10minutes"}
    async with start_auth(**limits) as one, start_auth(**limits) as two:
        # Each replica has its own app, Redis pool and limiter; the Redis is the same.
        assert one.state.rate_limiter is not two.state.rate_limiter
        phone = new_phone()
        checks = [
            await _verify(one, phone, "000000", ip="192.0.2.1"),
            await _verify(two, phone, "000000", ip="192.0.2.2"),
            await _verify(one, phone, "000000", ip="192.0.2.3"),
        ]
        refreshes = [
            await _refresh(two, "y" * 43, ip="192.0.2.4"),
            await _refresh(one, "y" * 43, ip="192.0.2.4"),
            await _refresh(two, "y" * 43, ip="192.0.2.4"),
        ]

    assert [c.status_code for c in checks[:2]] == [401, 401]
    _limited(checks[2], "phone")
    assert [r.status_code for r in refreshes[:2]] == [401, 401]
    _limited(refreshes[2], "ip")


async def _refresh_without_redis(
    database_url: str, keys: Keys, notifications: Notifications, *, fail_open: bool
) -> httpx.Response:
    """A refresh of an unknown token, on an auth whose Redis nothing answers for."""
    settings = settings_for(
        database_url, DEAD_REDIS, keys, notifications.url, rate_limit_fail_open=fail_open
    )
    async with running(settings, keys, notifications) as auth:
        return await _refresh(auth, "z" * 43, ip="192.0.2.5")


async def test_an_unreachable_redis_lets_refreshes_through_when_failing_open(
    database_url: str, keys: Keys, notifications: Notifications
) -> None:
    # A refresh needs only PostgreSQL: with the limiter failing open it is answered as
    # usual (here: an unknown token), never a 500.
    response = await _refresh_without_redis(database_url, keys, notifications, fail_open=True)
    problem(response, 401, "refresh_token_invalid")


async def test_an_unreachable_redis_is_a_503_problem_when_failing_closed(
    database_url: str, keys: Keys, notifications: Notifications
) -> None:
    response = await _refresh_without_redis(database_url, keys, notifications, fail_open=False)
    problem(response, 503, "rate_limit_unavailable")
    assert int(response.headers["retry-after"]) > 0
