"""Alembic environment of the auth service (async, over asyncpg)."""

from auth_service.models import Base
from storefront_kit.migrations import run_env

run_env(Base.metadata)
