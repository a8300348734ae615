"""Local stand-ins for third-party APIs (docs/design.md §3, §4 "Local profile").

Each submodule exposes ``create_app() -> FastAPI`` and runs as its own process::

    uvicorn storefront_sandbox.telegram:create_app --factory
    uvicorn storefront_sandbox.payments:create_app --factory
    uvicorn storefront_sandbox.shipping:create_app --factory

State lives in memory, one process per sandbox, so a restart starts clean.
"""

__all__: list[str] = []
