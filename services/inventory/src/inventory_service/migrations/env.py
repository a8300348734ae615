"""Alembic environment of the inventory service (async, over asyncpg)."""

from inventory_service.models import Base
from storefront_kit.migrations import run_env

run_env(Base.metadata)
