"""HTTP routers of the auth service (thin: parse, call the domain, shape the answer)."""

from fastapi import APIRouter

__all__ = ["routers"]

routers: list[APIRouter] = []
