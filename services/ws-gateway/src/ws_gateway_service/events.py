"""The events the ws-gateway reads (docs/design.md §5): it publishes none of its own.

Order events come from ``orders.events`` (the stream named by
``WS_GATEWAY_ORDERS_STREAM``) and are relayed to each user's channel
(:mod:`ws_gateway_service.workers.relay`); ``user.erased`` comes from auth's
``users.events`` (:mod:`ws_gateway_service.workers.erasure`). Their ``data`` is
passed on as it came (the relay) or read for its ``user_id`` only (the erasure).
"""

__all__ = ["RELAYED_TYPES", "USERS_STREAM", "USER_ERASED"]

#: The order events a user sees live on their sockets.
RELAYED_TYPES = frozenset(
    {
        "order.created",
        "order.confirmed",
        "order.failed",
        "order.status_changed",
        "payment.captured",
        "payment.refunded",
    }
)

#: Auth's stream of user events, and the one the ws-gateway acts on.
USERS_STREAM = "users.events"
USER_ERASED = "user.erased"
