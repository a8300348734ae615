"""Background loops of one replica: the reservation expiry sweeper (the outbox relay
is the kit's ``OutboxRelay``)."""
