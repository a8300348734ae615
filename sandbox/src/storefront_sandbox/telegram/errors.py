"""Errors in the Bot API's own shape, which python-telegram-bot turns into its exceptions."""

from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse

__all__ = ["BotApiError", "bad_request"]


class BotApiError(Exception):
    """An error in the Bot API's own shape: ``{ok: false, error_code, description}``."""

    def __init__(
        self, error_code: int, description: str, parameters: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = dict(parameters or {})

    def response(self) -> JSONResponse:
        """The HTTP response Telegram would send."""
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        headers = {}
        if self.parameters:
            body["parameters"] = self.parameters
            if "retry_after" in self.parameters:
                headers["Retry-After"] = str(self.parameters["retry_after"])
        return JSONResponse(body, status_code=self.error_code, headers=headers)


def bad_request(detail: str) -> BotApiError:
    return BotApiError(400, f"Bad Request: {detail}")
