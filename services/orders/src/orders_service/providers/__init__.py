"""Adapters for inventory and the payment and shipping providers (HTTP, base URLs from settings)."""
