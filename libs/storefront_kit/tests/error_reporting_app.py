"""A service app with a route that fails, for the error-reporting test (run under uvicorn).

The failing route exists only here: no production service has a way to crash on demand.
Its settings come from the environment like a service's (``DEMO_SENTRY_DSN``...).
"""

from typing import Any, ClassVar

import sentry_sdk
from demo_service import demo_app  # this folder is uvicorn's app_dir
from fastapi import APIRouter, FastAPI, Request
from pydantic_settings import SettingsConfigDict

from storefront_kit.settings import ServiceSettings


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_", extra="ignore")
    service_name: ClassVar[str] = "demo"


def create_app() -> FastAPI:
    router = APIRouter()

    @router.post("/customers/{phone}/crash")
    async def crash(phone: str, request: Request) -> None:
        body: dict[str, Any] = await request.json()
        # What a careless error message would say: the phone and the caller's credentials
        # (patterns the scrubber recognises in free text; an address it recognises only
        # under its key, as in the request body, so this message leaves it out).
        assert "address" in body
        raise RuntimeError(
            f"could not ship for {phone}, caller {request.headers.get('authorization')}"
        )

    @router.get("/sentry-integrations")
    async def sentry_integrations() -> list[str]:
        """The SDK integrations this process runs with (what wraps its calls)."""
        return sorted(sentry_sdk.get_client().integrations)

    return demo_app(DemoSettings(), router)
