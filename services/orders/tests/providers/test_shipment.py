"""The ShipmentRequest builder validates at build(); an order becomes a request."""

from datetime import UTC, datetime, timedelta

import pytest

from orders_service.clients.shipment import (
    Address,
    CustomsLine,
    Parcel,
    ShipmentRequestBuilder,
    ShipmentRequestError,
    build_shipment_request,
)
from orders_service.models import CustomerOrder
from storefront_kit.ids import new_id

ADDRESS = Address(line1="1 Main St", city="Springfield", postal_code="12345", country="US")


def minimal() -> ShipmentRequestBuilder:
    return (
        ShipmentRequestBuilder()
        .for_order("o-1")
        .to("Ada Lovelace", ADDRESS)
        .with_parcel(Parcel(weight_grams=500))
    )


def test_minimal_request_has_safe_defaults() -> None:
    request = minimal().build()
    assert request.service_level == "standard"
    assert request.signature_required is False
    payload = request.to_payload()
    assert payload["recipient"] == {
        "name": "Ada Lovelace",
        "line1": "1 Main St",
        "city": "Springfield",
        "postal_code": "12345",
        "country": "US",
    }
    assert "insurance_amount" not in payload


def test_every_optional_field_reaches_the_payload() -> None:
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    payload = (
        minimal()
        .with_service_level("express")
        .with_insurance(12_500, "EUR")
        .with_signature()
        .with_delivery_window(start, start + timedelta(hours=4))
        .with_customs_line(CustomsLine("Shoes", 1, 12_500, "EUR", hs_code="6403"))
        .with_notes("Leave at the door")
        .build()
        .to_payload()
    )
    assert payload["service_level"] == "express"
    assert (payload["insurance_amount"], payload["currency"]) == (12_500, "EUR")
    assert payload["signature_required"] is True
    assert payload["delivery_window"]["end"] == "2026-12-01T13:00:00+00:00"
    assert payload["customs_lines"][0]["hs_code"] == "6403"
    assert payload["notes"] == "Leave at the door"


def test_build_names_every_missing_required_field() -> None:
    with pytest.raises(ShipmentRequestError, match="order_id, recipient, address, parcels"):
        ShipmentRequestBuilder().build()


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (lambda b: b.with_parcel(Parcel(weight_grams=0)), "weight"),
        (lambda b: b.with_insurance(0, "EUR"), "insurance"),
        (
            lambda b: b.with_delivery_window(
                datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
            ),
            "window",
        ),
        (lambda b: b.with_customs_line(CustomsLine("x", 0, 1, "EUR")), "customs"),
        (lambda b: b.with_notes("x" * 501), "notes"),
    ],
)
def test_inconsistent_fields_are_refused_at_build(step, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ShipmentRequestError, match=message):
        step(minimal()).build()


def test_an_orders_parcel_weighs_per_unit_and_is_insured_for_its_total() -> None:
    order = CustomerOrder(
        id=new_id(),
        shipping_address={
            "name": "Ada Lovelace",
            "line1": "12 Analytical St",
            "city": "London",
            "postal_code": "N1 9GU",
            "country": "GB",
            "notes": "ring twice",
        },
        lines=[{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}],
        total=3750,
        currency="EUR",
    )
    request = build_shipment_request(order, item_weight_grams=500)
    assert request.order_id == str(order.id)
    assert request.parcels == (Parcel(weight_grams=1500),)
    assert (request.insurance_amount, request.currency) == (3750, "EUR")
    assert (request.address.city, request.notes) == ("London", "ring twice")


def test_an_order_without_a_recipient_cannot_be_shipped() -> None:
    order = CustomerOrder(
        id=new_id(), shipping_address={"line1": "x"}, lines=[], total=0, currency=None
    )
    with pytest.raises(ShipmentRequestError, match="recipient"):
        build_shipment_request(order, item_weight_grams=500)
