"""The payment provider stand-in: idempotency, the ledger, faults, concurrency."""

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from storefront_sandbox import payments as payments_module
from storefront_sandbox.settings import SandboxSettings
from storefront_stack.checks import ok, problem

ServeApp = Callable[[Any], AbstractContextManager[str]]


ORDER = {"order_id": "order-1", "amount": 4999, "currency": "EUR", "method": {"type": "card"}}


async def authorize(
    client: httpx.AsyncClient, key: str = "auth-1", body: dict[str, Any] | None = None
) -> httpx.Response:
    return await client.post(
        "/v1/payments/authorize", json=body or ORDER, headers={"Idempotency-Key": key}
    )


async def ledger(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/ledger", params=params)
    assert response.status_code == 200
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


async def test_health_endpoints_answer_ok(payments: httpx.AsyncClient) -> None:
    live = await payments.get("/health/live")
    ready = await payments.get("/health/ready")
    assert live.json() == {"status": "ok"}
    assert ready.json() == {"status": "ok"}
    assert live.headers["x-request-id"]


async def test_request_id_is_echoed(payments: httpx.AsyncClient) -> None:
    response = await payments.get("/health/live", headers={"X-Request-ID": "req-12345678"})
    assert response.headers["x-request-id"] == "req-12345678"


async def test_authorize_returns_the_payment_and_writes_one_ledger_entry(
    payments: httpx.AsyncClient,
) -> None:
    body = ok(await authorize(payments), 201)
    assert body["id"].startswith("pay_")
    assert body["order_id"] == "order-1"
    assert body["status"] == "authorized"
    assert (body["amount"], body["currency"]) == (4999, "EUR")
    entries = await ledger(payments)
    assert len(entries) == 1
    assert entries[0]["seq"] == 1
    assert entries[0]["kind"] == "authorization"
    assert entries[0]["payment_id"] == body["id"]
    assert entries[0]["order_id"] == "order-1"
    assert entries[0]["amount"] == 4999
    assert entries[0]["currency"] == "EUR"
    assert entries[0]["idempotency_key"] == "auth-1"
    assert entries[0]["at"].endswith("Z")
    fetched = await payments.get(f"/v1/payments/{body['id']}")
    assert fetched.json() == body


async def test_same_key_and_body_replays_the_original_without_a_second_entry(
    payments: httpx.AsyncClient,
) -> None:
    first = await authorize(payments)
    # Same JSON, other key order and spacing: still the same request.
    second = await payments.post(
        "/v1/payments/authorize",
        content=b'{"currency":"EUR",  "method": {"type":"card"}, '
        b'"amount":4999,"order_id":"order-1"}',
        headers={"Idempotency-Key": "auth-1", "Content-Type": "application/json"},
    )
    assert second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert len(await ledger(payments)) == 1


async def test_same_key_with_a_different_body_is_rejected(payments: httpx.AsyncClient) -> None:
    await authorize(payments)
    response = await authorize(payments, body={**ORDER, "amount": 5000})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "idempotency_key_reused"
    assert problem["status"] == 422
    assert problem["type"].endswith("/idempotency-key-reused")
    assert problem["title"]
    assert problem["detail"]
    assert len(await ledger(payments)) == 1


async def test_missing_idempotency_key_is_a_400_problem(payments: httpx.AsyncClient) -> None:
    response = await payments.post("/v1/payments/authorize", json=ORDER)
    problem(response, 400, "idempotency_key_missing")
    assert await ledger(payments) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**ORDER, "amount": 0}, "amount"),
        ({**ORDER, "amount": "4999"}, "amount"),
        ({**ORDER, "currency": "eur"}, "currency"),
        ({**ORDER, "surprise": True}, "surprise"),
        ({"amount": 1, "currency": "EUR"}, "order_id"),
    ],
)
async def test_bad_authorize_bodies_are_422_problems(
    payments: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await authorize(payments, body=body)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert any(field in error["loc"] for error in problem["errors"])
    assert await ledger(payments) == []


async def test_capture_is_idempotent_and_never_double_captured(
    payments: httpx.AsyncClient,
) -> None:
    payment = (await authorize(payments)).json()
    url = f"/v1/payments/{payment['id']}/capture"
    first = await payments.post(url, headers={"Idempotency-Key": "cap-1"})
    assert first.status_code == 200
    assert first.json()["status"] == "captured"
    assert first.json()["captured_amount"] == 4999
    replay = await payments.post(url, headers={"Idempotency-Key": "cap-1"})
    assert replay.json() == first.json()
    # A new key (a retried saga step that lost its key) still captures nothing more.
    again = await payments.post(url, headers={"Idempotency-Key": "cap-2"})
    assert again.status_code == 200
    assert again.json()["status"] == "captured"
    assert [e["kind"] for e in await ledger(payments)] == ["authorization", "capture"]


async def test_refund_after_capture_refunds_everything_once(payments: httpx.AsyncClient) -> None:
    payment = (await authorize(payments)).json()
    pid = payment["id"]
    await payments.post(f"/v1/payments/{pid}/capture", headers={"Idempotency-Key": "cap-1"})
    refund = await payments.post(
        f"/v1/payments/{pid}/refund", json={}, headers={"Idempotency-Key": "ref-1"}
    )
    assert refund.status_code == 200
    assert refund.json()["status"] == "refunded"
    assert refund.json()["refunded_amount"] == 4999
    retried = await payments.post(f"/v1/payments/{pid}/refund", headers={"Idempotency-Key": "r2"})
    assert retried.json()["status"] == "refunded"
    entries = await ledger(payments, order_id="order-1")
    assert [(e["kind"], e["amount"]) for e in entries] == [
        ("authorization", 4999),
        ("capture", 4999),
        ("refund", 4999),
    ]
    assert [e["seq"] for e in entries] == [1, 2, 3]


async def test_partial_refunds_add_up(payments: httpx.AsyncClient) -> None:
    pid = (await authorize(payments)).json()["id"]
    await payments.post(f"/v1/payments/{pid}/capture", headers={"Idempotency-Key": "c"})
    part = await payments.post(
        f"/v1/payments/{pid}/refund", json={"amount": 999}, headers={"Idempotency-Key": "r1"}
    )
    assert part.json()["status"] == "partially_refunded"
    too_much = await payments.post(
        f"/v1/payments/{pid}/refund", json={"amount": 4001}, headers={"Idempotency-Key": "r2"}
    )
    problem(too_much, 409, "refund_exceeds_captured")
    rest = await payments.post(f"/v1/payments/{pid}/refund", headers={"Idempotency-Key": "r3"})
    assert rest.json()["status"] == "refunded"
    assert rest.json()["refunded_amount"] == 4999


async def test_refund_of_an_uncaptured_payment_is_a_409(payments: httpx.AsyncClient) -> None:
    pid = (await authorize(payments)).json()["id"]
    response = await payments.post(
        f"/v1/payments/{pid}/refund", headers={"Idempotency-Key": "ref-1"}
    )
    problem(response, 409, "payment_not_captured")
    assert response.json()["payment_status"] == "authorized"
    assert [e["kind"] for e in await ledger(payments)] == ["authorization"]


async def test_void_releases_an_authorization_and_blocks_capture(
    payments: httpx.AsyncClient,
) -> None:
    pid = (await authorize(payments)).json()["id"]
    void = await payments.post(f"/v1/payments/{pid}/void", headers={"Idempotency-Key": "v"})
    assert void.json()["status"] == "voided"
    capture = await payments.post(f"/v1/payments/{pid}/capture", headers={"Idempotency-Key": "c"})
    problem(capture, 409, "payment_voided")
    assert [e["kind"] for e in await ledger(payments)] == ["authorization", "void"]


async def test_unknown_payment_is_a_404_problem(payments: httpx.AsyncClient) -> None:
    response = await payments.get("/v1/payments/pay_nope")
    problem(response, 404, "payment_not_found")


async def test_decline_fault_answers_402_and_is_replayed_for_the_same_key(
    payments: httpx.AsyncClient,
) -> None:
    configured = await payments.post("/faults", json={"mode": "decline"})
    assert configured.json()["mode"] == "decline"
    assert configured.json()["operations"] == ["authorize", "capture", "refund", "void"]
    response = await authorize(payments)
    assert response.status_code == 402
    problem = response.json()
    assert problem["code"] == "payment_declined"
    assert problem["decline_code"] == "card_declined"
    assert problem["order_id"] == "order-1"
    await payments.post("/faults", json={"mode": "ok"})
    # A decline is an outcome: the same key keeps answering it.
    replay = await authorize(payments)
    assert replay.status_code == 402
    assert replay.json() == problem
    assert await ledger(payments) == []


async def test_error_fault_is_a_503_and_a_retry_with_the_same_key_succeeds(
    payments: httpx.AsyncClient,
) -> None:
    await payments.post("/faults", json={"mode": "error", "times": 1})
    failed = await authorize(payments)
    problem(failed, 503, "provider_unavailable")
    retried = await authorize(payments)
    assert retried.status_code == 201
    assert retried.json()["status"] == "authorized"
    faults = (await payments.get("/faults")).json()
    assert (faults["injected"], faults["remaining"]) == (1, 0)
    assert len(await ledger(payments)) == 1


async def test_faults_hit_only_the_listed_operations(payments: httpx.AsyncClient) -> None:
    await payments.post("/faults", json={"mode": "error", "operations": ["capture"]})
    payment = await authorize(payments)
    assert payment.status_code == 201
    capture = await payments.post(
        f"/v1/payments/{payment.json()['id']}/capture", headers={"Idempotency-Key": "c"}
    )
    problem(capture, 503, "provider_unavailable")
    assert [e["kind"] for e in await ledger(payments)] == ["authorization"]


async def test_rate_zero_injects_nothing(payments: httpx.AsyncClient) -> None:
    await payments.post("/faults", json={"mode": "decline", "rate": 0})
    response = await authorize(payments)
    assert response.json()["status"] == "authorized"
    assert (await payments.get("/faults")).json()["injected"] == 0


async def test_bad_fault_bodies_are_rejected(payments: httpx.AsyncClient) -> None:
    for body in ({"mode": "flood"}, {"mode": "error", "rate": 2}, {"mode": "ok", "x": 1}):
        response = await payments.post("/faults", json=body)
        problem(response, 422, "validation_error")
    assert (await payments.get("/faults")).json()["mode"] == "ok"


async def test_timeout_fault_stalls_then_answers_504_without_charging(
    payments: httpx.AsyncClient,
) -> None:
    await payments.post("/faults", json={"mode": "timeout"})
    started = time.monotonic()
    response = await authorize(payments)
    assert time.monotonic() - started >= 0.3
    problem(response, 504, "provider_timeout")
    assert await ledger(payments) == []


async def test_timeout_fault_with_apply_charges_although_the_client_hears_late(
    payments: httpx.AsyncClient,
) -> None:
    await payments.post("/faults", json={"mode": "timeout", "then": "apply"})
    response = await authorize(payments)
    assert response.status_code == 201
    assert response.json()["status"] == "authorized"
    assert len(await ledger(payments)) == 1


def test_timeout_fault_outlasts_a_real_client_timeout(serve_app: ServeApp) -> None:
    app = payments_module.create_app(SandboxSettings(timeout_s=5))
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=0.5) as client:
        client.post("/faults", json={"mode": "timeout", "operations": ["authorize"]})
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            client.post("/v1/payments/authorize", json=ORDER, headers={"Idempotency-Key": "k"})
        assert time.monotonic() - started < 2
        client.post("/faults", json={"mode": "ok"})
        # The stalled request noticed its client left and released the key promptly.
        retried = client.post(
            "/v1/payments/authorize", json=ORDER, headers={"Idempotency-Key": "k"}, timeout=3
        )
        assert retried.status_code == 201
        assert retried.json()["status"] == "authorized"
        assert len(client.get("/ledger").json()["entries"]) == 1


async def test_latency_delays_but_does_not_fail(payments: httpx.AsyncClient) -> None:
    await payments.post("/faults", json={"mode": "ok", "latency_ms": 200})
    started = time.monotonic()
    response = await authorize(payments)
    assert time.monotonic() - started >= 0.2
    assert response.status_code == 201


async def test_fifty_concurrent_authorizes_with_one_key_make_one_authorization(
    payments: httpx.AsyncClient,
) -> None:
    # Latency widens the race window: every request is in flight before the first ends.
    await payments.post("/faults", json={"mode": "ok", "latency_ms": 50})
    responses = await asyncio.gather(*(authorize(payments, key="race") for _ in range(50)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 49
    entries = await ledger(payments)
    assert [e["kind"] for e in entries] == ["authorization"]
    assert len((await payments.get("/v1/payments")).json()) == 1


async def test_concurrent_captures_with_different_keys_capture_once(
    payments: httpx.AsyncClient,
) -> None:
    pid = (await authorize(payments)).json()["id"]
    responses = await asyncio.gather(
        *(
            payments.post(f"/v1/payments/{pid}/capture", headers={"Idempotency-Key": f"c{i}"})
            for i in range(20)
        )
    )
    assert {r.json()["status"] for r in responses} == {"captured"}
    assert [e["kind"] for e in await ledger(payments)] == ["authorization", "capture"]


async def test_reset_forgets_everything(payments: httpx.AsyncClient) -> None:
    await authorize(payments)
    await payments.post("/faults", json={"mode": "decline"})
    reset = await payments.post("/reset")
    assert reset.status_code == 204
    assert await ledger(payments) == []
    assert (await payments.get("/faults")).json()["mode"] == "ok"
    # The key is free again after a reset.
    again = await authorize(payments, body={**ORDER, "amount": 1})
    assert again.status_code == 201
    assert again.json()["amount"] == 1
