"""Adapters for the payment and shipping providers: HTTP APIs, base URLs from settings."""
