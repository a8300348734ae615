"""Tables of the ``inventory`` database: singular snake_case names, one naming convention."""

from sqlalchemy.orm import DeclarativeBase

from storefront_kit.db import metadata_with_conventions
from storefront_kit.events import OutboxMixin

__all__ = ["Base", "OutboxEvent"]


class Base(DeclarativeBase):
    """Declarative base of the inventory service."""

    metadata = metadata_with_conventions()


class OutboxEvent(OutboxMixin, Base):
    """Events saved in the same transaction as the change, relayed to Redis streams."""

    __tablename__ = "outbox_event"
