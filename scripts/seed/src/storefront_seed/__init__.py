"""Demo data for a local platform: a product catalogue with stock and a linked admin.

Each part lives in its own module (``products``, ``users``) and is idempotent: running
the seed twice changes nothing the second time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from storefront_stack.platform import Platform

__all__ = ["seed_platform"]

_PARTS = ("products", "users")


def seed_platform(platform: Platform) -> None:
    """Run every seed part that exists against a started platform."""
    for part in _PARTS:
        try:
            module = importlib.import_module(f"storefront_seed.{part}")
        except ModuleNotFoundError as exc:
            if exc.name != f"storefront_seed.{part}":
                raise
            continue
        module.seed(platform)
