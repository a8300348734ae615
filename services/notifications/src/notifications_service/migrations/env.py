"""Alembic environment of the notifications service (async, over asyncpg)."""

from notifications_service.models import Base
from storefront_kit.migrations import run_env

run_env(Base.metadata)
