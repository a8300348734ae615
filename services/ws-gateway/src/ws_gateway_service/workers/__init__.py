"""Background loops: the heartbeat, the order-event relay and the erasure consumer."""
