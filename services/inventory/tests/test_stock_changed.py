"""``stock.changed`` built by the database is the event the Python path would build."""

import uuid
from typing import Any

import pytest
from pydantic import BaseModel

from inventory_service import events
from inventory_service.events import StockData
from inventory_service.repository import _jsonb_object


async def _python_path_data(inventory: Any, sku: str) -> dict[str, Any]:
    """``events.stock_changed`` over the stock row as it is now, read straight from SQL."""
    stock = await inventory.stock(sku)
    product_id = await inventory.scalar(
        "SELECT product_id FROM stock WHERE sku = :sku", {"sku": sku}
    )
    model = StockData(
        sku=sku,
        product_id=product_id,
        on_hand=stock["on_hand"],
        reserved=stock["reserved"],
        available=stock["on_hand"] - stock["reserved"],
        version=stock["version"],
    )
    return events.stock_changed(model).data


async def _assert_last_event_matches(inventory: Any, sku: str) -> dict[str, Any]:
    envelope = (await inventory.outbox("stock.changed", sku))[-1]
    data = envelope["data"]
    assert StockData.model_validate(data).model_dump(mode="json") == data
    assert data == await _python_path_data(inventory, sku)
    return envelope


async def test_every_stock_statement_stages_the_payload_the_model_defines(
    inventory: Any,
) -> None:
    product = await inventory.create_product(on_hand=10)
    sku = product["sku"]
    # Staged from Python (events.stock_changed over a StockData): the reference shape.
    created = await _assert_last_event_matches(inventory, sku)

    order_id = uuid.uuid4()
    reserved = await inventory.reserve([{"sku": sku, "qty": 3}], order_id=order_id)
    assert reserved.status_code == 200, reserved.text
    held = await _assert_last_event_matches(inventory, sku)  # _HOLD_RESERVATION
    assert held["data"]["reserved"] == 3

    for step, expected_on_hand in (("commit", 7), ("restock", 10)):
        moved = await inventory.client.post(
            f"/internal/inventory/{step}",
            json={"order_id": str(order_id)},
            headers=inventory.service,
        )
        assert moved.status_code == 200, moved.text
        changed = await _assert_last_event_matches(inventory, sku)  # _COMMIT, _RESTOCK
        assert changed["data"]["on_hand"] == expected_on_hand

    order_id = uuid.uuid4()
    reserved = await inventory.reserve([{"sku": sku, "qty": 2}], order_id=order_id)
    assert reserved.status_code == 200, reserved.text
    released = await inventory.client.post(
        "/internal/inventory/release", json={"order_id": str(order_id)}, headers=inventory.service
    )
    assert released.status_code == 200, released.text
    await _assert_last_event_matches(inventory, sku)  # _RELEASE

    adjusted = await inventory.adjust_stock(product, -4, "count")
    assert adjusted.status_code == 200, adjusted.text
    last = await _assert_last_event_matches(inventory, sku)  # _ADJUST
    assert last["data"]["available"] == 6

    # The envelope around the data is the template's, with an id of its own.
    assert set(last) == set(created)
    assert (last["type"], last["source"], last["version"]) == ("stock.changed", "inventory", 1)
    ids = [envelope["id"] for envelope in await inventory.outbox("stock.changed", sku)]
    assert len(set(ids)) == len(ids) == 7  # one per change, each its own id


def test_the_sql_object_has_a_key_per_model_field_in_order() -> None:
    class Payload(BaseModel):
        a: int
        b_total: int

    assert _jsonb_object(Payload, {"b_total": "x + y"}) == (
        "jsonb_build_object('a', a, 'b_total', x + y)"
    )


def test_an_expression_for_no_field_is_refused() -> None:
    with pytest.raises(ValueError, match="misspelt"):
        _jsonb_object(StockData, {"misspelt": "1"})
