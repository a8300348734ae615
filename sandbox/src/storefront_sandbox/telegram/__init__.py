"""A Telegram Bot API stand-in that python-telegram-bot talks to through ``base_url``.

Two faces:

- the Bot API, at ``/bot<token>/<method>`` (``Bot(token, base_url=f"{url}/bot")``),
  answering ``{"ok": true, "result": ...}`` or Telegram's error shape for the methods
  the notifications service uses (:mod:`.methods`);
- developer endpoints (docs/design.md §4 "Local profile"): ``POST /start`` plays a user
  pressing Start on the bot's deep link by posting a real Update to the registered
  webhook, ``POST /contact`` plays them sharing a contact (their own, or someone
  else's card), ``GET /messages`` shows what the bot sent (with its reply keyboards),
  ``/faults`` makes the API flood (429 with ``retry_after``), fail or refuse. These
  answer RFC 9457 problems (:mod:`.app`).

Run: ``uvicorn storefront_sandbox.telegram:create_app --factory``.
"""

from storefront_sandbox.telegram.app import SECRET_HEADER, create_app
from storefront_sandbox.telegram.state import TelegramState

__all__ = ["SECRET_HEADER", "TelegramState", "create_app"]
