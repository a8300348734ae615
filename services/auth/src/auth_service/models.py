"""Tables of the ``auth`` database (singular snake_case names, one naming convention)."""

from sqlalchemy.orm import DeclarativeBase

from storefront_kit.db import metadata_with_conventions

__all__ = ["Base"]


class Base(DeclarativeBase):
    """Declarative base of the auth service."""

    metadata = metadata_with_conventions()
