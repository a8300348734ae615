"""Background loops of notifications: the stream consumers the lifespan starts."""
