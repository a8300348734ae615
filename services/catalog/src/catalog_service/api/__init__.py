"""HTTP routers of the catalog service (thin: parse, call the domain, shape the answer)."""

from fastapi import APIRouter

from catalog_service.api.products import router as products_router

__all__ = ["routers"]

routers: list[APIRouter] = [products_router]
