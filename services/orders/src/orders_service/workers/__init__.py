"""Background loops: the erasure consumer's handler and the saga recovery loop.

The outbox relay is the kit's own loop (``storefront_kit.events.OutboxRelay``), built
and started by the lifespan like these.
"""
