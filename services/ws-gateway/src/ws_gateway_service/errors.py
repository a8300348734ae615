"""Errors of the ws-gateway service: none of its own (it raises storefront_kit.errors)."""

__all__: list[str] = []
