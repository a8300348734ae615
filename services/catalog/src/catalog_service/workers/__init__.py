"""Background loops of one replica: the ``inventory.events`` listener."""
