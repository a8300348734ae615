"""Alembic environment of the orders service (async, over asyncpg)."""

from orders_service.models import Base
from storefront_kit.migrations import run_env

run_env(Base.metadata)
