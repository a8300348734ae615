"""Time-ordered identifiers (UUIDv7): index-friendly and sortable by creation time."""

import uuid

import uuid6

__all__ = ["new_id"]


def new_id() -> uuid.UUID:
    """Return a new UUIDv7 as a standard :class:`uuid.UUID`."""
    return uuid.UUID(bytes=uuid6.uuid7().bytes)
