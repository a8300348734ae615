"""The shipping provider stand-in: shipments, cancellation, idempotency, faults."""

import asyncio
from typing import Any

import httpx
import pytest

from storefront_stack.checks import ok, problem

SHIPMENT: dict[str, Any] = {
    "order_id": "order-7",
    "recipient": {
        "name": "Ada Lovelace",
        "phone": "+441234567890",
        "line1": "12 St James's Square",
        "city": "London",
        "postal_code": "SW1Y 4JH",
        "country": "GB",
        "floor": 3,
    },
    "parcels": [{"weight_grams": 1200, "length_cm": 30}, {"weight_grams": 300}],
    "service_level": "express",
    "insurance_amount": 5000,
    "currency": "GBP",
    "signature_required": True,
    "delivery_window": {"from": "09:00", "to": "12:00"},
    "notes": "Leave with the porter",
}


async def create(
    client: httpx.AsyncClient, key: str = "ship-1", body: dict[str, Any] | None = None
) -> httpx.Response:
    return await client.post(
        "/v1/shipments", json=body or SHIPMENT, headers={"Idempotency-Key": key}
    )


async def test_create_returns_tracking_and_label(shipping: httpx.AsyncClient) -> None:
    body = ok(await create(shipping), 201)
    assert body["id"].startswith("shp_")
    assert body["order_id"] == "order-7"
    assert body["status"] == "created"
    assert body["tracking_number"].startswith("SBX")
    assert len(body["tracking_number"]) == 15
    assert body["carrier"] == "Sandbox Express"
    assert body["weight_grams"] == 1500
    assert body["label_url"] == f"http://shipping/labels/{body['id']}.pdf"
    # Unknown keys inside nested objects are kept, as carriers keep them.
    assert body["request"]["recipient"]["floor"] == 3
    fetched = await shipping.get(f"/v1/shipments/{body['id']}")
    assert fetched.json() == body
    label = await shipping.get(f"/labels/{body['id']}.pdf")
    assert label.headers["content-type"] == "application/pdf"
    assert label.content.startswith(b"%PDF-1.4")
    assert body["tracking_number"].encode() in label.content


async def test_label_url_follows_the_gateway_prefix(shipping: httpx.AsyncClient) -> None:
    response = await shipping.post(
        "/v1/shipments",
        json=SHIPMENT,
        headers={"Idempotency-Key": "k", "X-Forwarded-Prefix": "/sandbox/shipping"},
    )
    shipment_id = response.json()["id"]
    assert response.json()["label_url"] == (
        f"http://shipping/sandbox/shipping/labels/{shipment_id}.pdf"
    )


async def test_items_instead_of_parcels_are_accepted(shipping: httpx.AsyncClient) -> None:
    body = {
        "order_id": "order-8",
        "recipient": {**SHIPMENT["recipient"], "postal_code": 10115},
        "items": [{"sku": "SKU-1", "qty": 2, "weight_grams": 250}],
    }
    response = await create(shipping, body=body)
    assert response.status_code == 201
    assert response.json()["carrier"] == "Sandbox Post"
    assert response.json()["service_level"] == "standard"
    assert response.json()["weight_grams"] == 500
    assert response.json()["request"]["recipient"]["postal_code"] == "10115"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**SHIPMENT, "surprise": 1}, "surprise"),
        ({**SHIPMENT, "parcels": None}, None),
        ({**SHIPMENT, "parcels": [{"weight_grams": 0}]}, "weight_grams"),
        ({**SHIPMENT, "recipient": {"name": "x"}}, "line1"),
        ({k: v for k, v in SHIPMENT.items() if k != "order_id"}, "order_id"),
    ],
)
async def test_bad_shipments_are_422_problems(
    shipping: httpx.AsyncClient, body: dict[str, Any], field: str | None
) -> None:
    response = await create(shipping, body=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "validation_error"
    if field is not None:
        assert any(field in error["loc"] for error in problem["errors"])
    assert (await shipping.get("/shipments")).json() == []


async def test_same_key_replays_and_a_different_body_is_refused(
    shipping: httpx.AsyncClient,
) -> None:
    first = await create(shipping)
    again = await create(shipping)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = await create(shipping, body={**SHIPMENT, "notes": "changed"})
    problem(other, 422, "idempotency_key_reused")
    assert len((await shipping.get("/shipments")).json()) == 1


async def test_concurrent_creates_with_one_key_make_one_shipment(
    shipping: httpx.AsyncClient,
) -> None:
    await shipping.post("/faults", json={"mode": "ok", "latency_ms": 30})
    responses = await asyncio.gather(*(create(shipping, key="same") for _ in range(20)))
    assert len({r.json()["id"] for r in responses}) == 1
    assert len((await shipping.get("/shipments")).json()) == 1


async def test_cancel_is_idempotent(shipping: httpx.AsyncClient) -> None:
    shipment_id = (await create(shipping)).json()["id"]
    first = await shipping.post(
        f"/v1/shipments/{shipment_id}/cancel", json={"reason": "order failed"}
    )
    assert first.status_code == 200
    assert first.json()["status"] == "cancelled"
    assert first.json()["cancel_reason"] == "order failed"
    second = await shipping.post(
        f"/v1/shipments/{shipment_id}/cancel", headers={"Idempotency-Key": "c-1"}
    )
    assert second.json()["status"] == "cancelled"
    assert second.json()["cancelled_at"] == first.json()["cancelled_at"]
    listed = (await shipping.get("/shipments", params={"order_id": "order-7"})).json()
    assert [s["status"] for s in listed] == ["cancelled"]


async def test_cancel_of_an_unknown_shipment_is_a_404(shipping: httpx.AsyncClient) -> None:
    response = await shipping.post("/v1/shipments/shp_nope/cancel")
    problem(response, 404, "shipment_not_found")


@pytest.mark.parametrize("mode", ["reject", "decline"])
async def test_reject_fault_is_a_422(shipping: httpx.AsyncClient, mode: str) -> None:
    await shipping.post("/faults", json={"mode": mode})
    response = await create(shipping)
    problem(response, 422, "shipment_rejected")
    assert response.json()["order_id"] == "order-7"
    assert (await shipping.get("/shipments")).json() == []


async def test_error_fault_then_retry_with_the_same_key(shipping: httpx.AsyncClient) -> None:
    await shipping.post("/faults", json={"mode": "error", "times": 2})
    statuses = [(await create(shipping)).status_code for _ in range(3)]
    assert statuses == [503, 503, 201]
    assert len((await shipping.get("/shipments")).json()) == 1


async def test_timeout_fault_answers_504_after_the_stall(shipping: httpx.AsyncClient) -> None:
    await shipping.post("/faults", json={"mode": "timeout", "operations": ["create"]})
    response = await create(shipping)
    problem(response, 504, "provider_timeout")
    faults = (await shipping.get("/faults")).json()
    assert faults["operations"] == ["create"]
    assert faults["injected"] == 1


async def test_reset_forgets_shipments(shipping: httpx.AsyncClient) -> None:
    await create(shipping)
    assert (await shipping.post("/reset")).status_code == 204
    assert (await shipping.get("/shipments")).json() == []
    assert (await create(shipping, body={**SHIPMENT, "order_id": "x"})).json()["order_id"] == "x"
