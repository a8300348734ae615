"""Every admin product and stock change stages exactly one ``audit.recorded`` event in
the outbox, in its own transaction (nothing when the change is refused), and the relay
publishes it on ``audit.events`` for auth to store."""

import asyncio
from typing import Any

from storefront_kit.audit import AUDIT_EVENT_TYPE, AUDIT_STREAM, AuditEntry
from storefront_kit.events import EventEnvelope
from storefront_stack.checks import rows

BASE = "/api/v1/admin/products"


async def _audited(inventory: Any, target_id: str) -> list[dict[str, Any]]:
    """The audit entries staged about one product, oldest first."""
    staged = await rows(
        inventory.engine,
        "SELECT stream, event_type, envelope FROM outbox_event"
        " WHERE envelope->'data'->>'target_id' = :id ORDER BY created_at, id",
        {"id": target_id},
    )
    entries = []
    for row in staged:
        assert row.stream == AUDIT_STREAM
        assert row.event_type == AUDIT_EVENT_TYPE
        envelope = EventEnvelope.model_validate(row.envelope)
        entry = AuditEntry.model_validate(envelope.data)
        assert entry.id == envelope.id
        entries.append(entry.model_dump(mode="json"))
    return entries


async def test_creating_a_product_records_who_from_where_and_what(
    inventory: Any, sku_factory: Any
) -> None:
    sku = sku_factory("AUDIT")
    body = {
        "sku": sku, "name": "Lamp", "brand": "Acme", "category": "home",
        "price": 4200, "currency": "EUR", "initial_stock": 3,
    }  # fmt: skip
    headers = {**inventory.admin, "X-Request-ID": "audit-create-1", "X-Real-IP": "203.0.113.5"}

    created = await inventory.client.post(BASE, json=body, headers=headers)

    assert created.status_code == 201, created.text
    [entry] = await _audited(inventory, created.json()["id"])
    assert entry["action"] == "product.created"
    assert entry["service"] == "inventory"
    assert entry["target_type"] == "product"
    assert (entry["actor_id"], entry["actor_roles"]) == ("admin-1", ["admin"])
    assert (entry["request_id"], entry["client_ip"]) == ("audit-create-1", "203.0.113.5")
    assert entry["before"] is None
    assert entry["after"]["sku"] == sku
    assert entry["after"]["price"] == 4200
    assert entry["after"]["initial_stock"] == 3
    assert entry["after"]["version"] == 1


async def test_an_update_records_the_changed_fields_before_and_after(inventory: Any) -> None:
    product = await inventory.create_product()
    url = f"{BASE}/{product['id']}"

    updated = await inventory.client.patch(
        url, json={"price": 1500, "name": "Renamed"}, headers={**inventory.admin, "If-Match": '"1"'}
    )
    stale = await inventory.client.patch(
        url, json={"price": 1}, headers={**inventory.admin, "If-Match": '"1"'}
    )

    assert updated.status_code == 200, updated.text
    assert stale.status_code == 412
    created, changed = await _audited(inventory, product["id"])
    assert created["action"] == "product.created"
    assert changed["action"] == "product.updated"
    assert changed["before"] == {"name": "Test product", "price": 1250, "version": 1}
    assert changed["after"] == {"name": "Renamed", "price": 1500, "version": 2}


async def test_a_delete_is_recorded_once_and_a_second_delete_records_nothing(
    inventory: Any,
) -> None:
    product = await inventory.create_product()
    url = f"{BASE}/{product['id']}"

    deleted = await inventory.client.delete(url, headers=inventory.admin)
    again = await inventory.client.delete(url, headers=inventory.admin)

    assert deleted.status_code == 204
    assert again.status_code == 404
    entries = await _audited(inventory, product["id"])
    assert [entry["action"] for entry in entries] == ["product.created", "product.deleted"]
    removal = entries[1]
    assert removal["before"] == {"sku": product["sku"], "active": True, "version": 1,
                                 "deleted_at": None}  # fmt: skip
    assert removal["after"]["active"] is False
    assert removal["after"]["deleted_at"] is not None
    assert removal["after"]["version"] == 2


async def test_a_stock_adjustment_is_recorded_once_and_a_refused_one_not_at_all(
    inventory: Any,
) -> None:
    product = await inventory.create_product(on_hand=5)
    url = f"{BASE}/{product['id']}/stock"
    await inventory.reserve([{"sku": product["sku"], "qty": 2}])

    added = await inventory.adjust_stock(product, 4, "delivery #9")
    refused = await inventory.adjust_stock(product, -8, "lost")

    assert added.status_code == 200, added.text
    assert refused.status_code == 409
    entries = await _audited(inventory, product["id"])
    assert [entry["action"] for entry in entries] == ["product.created", "stock.adjusted"]
    adjusted = entries[1]
    assert adjusted["before"] == {"on_hand": 5, "reserved": 2}
    assert adjusted["after"] == {
        "on_hand": 9, "reserved": 2, "sku": product["sku"], "delta": 4, "reason": "delivery #9",
    }  # fmt: skip
    # inventory's own per-product trail names the same actor
    trail = await inventory.client.get(f"{url}/adjustments", headers=inventory.moderator)
    assert trail.json()[0]["actor"] == adjusted["actor_id"] == "admin-1"


async def test_moderators_change_nothing_and_so_record_nothing(inventory: Any) -> None:
    product = await inventory.create_product()
    url = f"{BASE}/{product['id']}"

    patched = await inventory.client.patch(
        url, json={"price": 1}, headers={**inventory.moderator, "If-Match": "*"}
    )
    stocked = await inventory.client.post(
        f"{url}/stock", json={"delta": 1, "reason": "x"}, headers=inventory.moderator
    )

    assert (patched.status_code, stocked.status_code) == (403, 403)
    assert [e["action"] for e in await _audited(inventory, product["id"])] == ["product.created"]


async def test_the_relay_publishes_audit_entries_on_the_audit_stream(inventory: Any) -> None:
    product = await inventory.create_product()
    [entry] = await _audited(inventory, product["id"])

    for _ in range(250):
        published = await inventory.redis.xrange(AUDIT_STREAM)
        if any(fields["id"] == entry["id"] for _, fields in published):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the audit entry never reached audit.events")
    [fields] = [fields for _, fields in published if fields["id"] == entry["id"]]
    assert fields["type"] == AUDIT_EVENT_TYPE
    assert EventEnvelope.from_stream_fields(fields).data == entry
