"""What the orders service tells the rest of the platform.

Domain events go through the outbox to the ``orders.events`` stream (docs/design.md §5); their
``data`` always holds ``order_id`` and ``user_id``, and for ``order.created``,
``order.confirmed`` and ``payment.captured`` also the priced lines, totals and currency
so notifications can render a receipt (:func:`orders_service.repository.receipt`).
Admin alerts are ephemeral Redis pub/sub messages ``{type, data, occurred_at}`` on
``admin.alerts`` (:mod:`orders_service.clients.alerts`).

Domain events are staged on the session and written, all of a transaction's at once, by
one prebuilt ``INSERT`` just before it commits (a ``before_commit`` hook in
:mod:`orders_service.repository`), not as ORM objects: a saga step then costs no
unit-of-work for its events (issue 17). They still commit or roll back with the change
that caused them.

``user.erased`` is read from auth's ``users.events`` (:mod:`orders_service.workers.erasure`).
"""

__all__ = ["ALERTS_CHANNEL", "SOURCE", "STREAM", "USERS_STREAM", "USER_ERASED"]

STREAM = "orders.events"
SOURCE = "orders"
ALERTS_CHANNEL = "admin.alerts"

#: Auth's stream of user events, and the one orders acts on.
USERS_STREAM = "users.events"
USER_ERASED = "user.erased"
