"""Every ``/internal/*`` route of every service says who may call it, and the keys follow.

The table below is the contract (docs/auth.md, "Service-to-service trust"); the runner's
topology (who gets whose public key) must give each service exactly the callers its
routes accept, no more.
"""

import importlib

import pytest

from storefront_kit.security import route_callers
from storefront_stack.topology import CALLERS, SERVICES

EXPECTED = {
    "auth": {
        "POST /internal/auth/telegram/start": {"notifications"},
        "POST /internal/auth/telegram/contact": {"notifications"},
        "GET /internal/auth/users/{user_id}/telegram": {"notifications"},
    },
    "catalog": {},
    "inventory": {
        "POST /internal/inventory/reserve": {"orders"},
        "POST /internal/inventory/release": {"orders"},
        "POST /internal/inventory/commit": {"orders"},
        "POST /internal/inventory/restock": {"orders"},
        "GET /internal/inventory/products/export": {"catalog"},
        "GET /internal/inventory/products/{sku}": {"catalog", "orders"},
    },
    "orders": {
        "GET /internal/orders/users/{user_id}/export": {"auth"},
    },
    "notifications": {
        "POST /internal/notifications/otp": {"auth"},
        "POST /internal/notifications/chats/forget": {"auth"},
        "GET /internal/notifications/users/{user_id}/export": {"auth"},
    },
    "ws-gateway": {
        "GET /internal/ws-gateway/users/{user_id}/presence": {"auth"},
    },
}


@pytest.mark.parametrize("service", SERVICES, ids=[s.name for s in SERVICES])
def test_every_internal_route_names_its_callers_and_only_they_get_keys(service: object) -> None:
    name, package = service.name, service.package  # type: ignore[attr-defined]
    app = importlib.import_module(f"{package}.app").create_app()
    declared = route_callers(app)
    undeclared = sorted(route for route, callers in declared.items() if callers is None)
    assert not undeclared, f"{name}: internal routes without callers: {undeclared}"
    assert {route: set(callers or ()) for route, callers in declared.items()} == EXPECTED[name]
    accepted = set().union(*declared.values()) if declared else set()
    assert set(CALLERS.get(name, ())) == accepted, f"{name}: keys handed out != callers"
