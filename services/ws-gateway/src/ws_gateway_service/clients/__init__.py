"""Outbound clients: the channel layer (Redis pub/sub across replicas)."""
