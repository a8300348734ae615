"""Sentry stand-in: receives the SDK's envelopes and shows what arrived.

``sentry-sdk`` pointed at ``http://<key>@<this host>/<project>`` posts
``/api/<project>/envelope/``: newline-delimited JSON, the envelope's headers, then items
(a header line ``{"type", "length"?}`` and its payload: ``length`` bytes, or up to the
next newline), compressed as ``Content-Encoding`` says (gzip or deflate: what the SDK sends
without the Brotli package, which the platform does not install). Events (``event`` and
``transaction`` items) are kept in memory in arrival order with the project they were
sent to; other items (sessions, client reports) are counted.
"""

import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Query, Request
from pydantic import BaseModel

from storefront_sandbox.problems import ProblemError, problem_responses
from storefront_sandbox.web import decoded_body, new_app

__all__ = ["Envelope", "create_app", "parse_envelope"]

#: Larger bodies are refused (Sentry's own limit for an envelope is 200 MB; ours is local).
MAX_BODY_BYTES = 20 * 1024 * 1024
EVENT_TYPES = frozenset({"event", "transaction"})


@dataclass
class Envelope:
    """One parsed envelope: its headers and ``(item headers, payload)`` pairs."""

    headers: dict[str, Any]
    items: list[tuple[dict[str, Any], Any]] = field(default_factory=list)


def _payload(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def parse_envelope(body: bytes) -> Envelope:
    """The envelope in ``body``; ValueError if it is not one."""
    first, _, rest = body.partition(b"\n")
    headers = json.loads(first or b"{}")
    if not isinstance(headers, dict):
        raise ValueError("the envelope header is not a JSON object")
    envelope = Envelope(headers=headers)
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        if not line.strip():
            continue
        item_headers = json.loads(line)
        if not isinstance(item_headers, dict):
            raise ValueError("an item header is not a JSON object")
        length = item_headers.get("length")
        if isinstance(length, int) and length >= 0:
            if len(rest) < length:
                raise ValueError("an item is shorter than its length")
            raw, rest = rest[:length], rest[length:]
            rest = rest.removeprefix(b"\n")
        else:
            raw, _, rest = rest.partition(b"\n")
        envelope.items.append((item_headers, _payload(raw)))
    return envelope


class ReceivedEvent(BaseModel):
    """An event as it arrived, with the project it was sent to."""

    project: str
    type: str
    event: dict[str, Any]


class EventList(BaseModel):
    events: list[ReceivedEvent]
    other_items: int


class Accepted(BaseModel):
    id: str | None


@dataclass
class SentryState:
    events: list[ReceivedEvent] = field(default_factory=list)
    other_items: int = 0


def create_app() -> FastAPI:
    """The Sentry stand-in (``--factory`` entry point)."""
    state = SentryState()
    app = new_app(
        title="Sentry sandbox",
        description="Stand-in Sentry: receives error-report envelopes and lists them.",
    )

    @app.post(
        "/api/{project}/envelope/",
        response_model=Accepted,
        responses=problem_responses(400, 413),
        tags=["ingest"],
    )
    async def envelope(project: str, request: Request) -> Accepted:
        """Take one envelope (what ``sentry-sdk`` sends)."""
        try:
            body = await decoded_body(
                request,
                limit=MAX_BODY_BYTES,
                code="envelope_too_large",
                detail="The envelope is too large.",
            )
            parsed = parse_envelope(body)
        except (ValueError, OSError, EOFError, zlib.error) as exc:
            raise ProblemError(400, "malformed_envelope", f"Not a Sentry envelope: {exc}") from None
        for item_headers, payload in parsed.items:
            kind = str(item_headers.get("type", ""))
            if kind in EVENT_TYPES and isinstance(payload, dict):
                state.events.append(ReceivedEvent(project=project, type=kind, event=payload))
            else:
                state.other_items += 1
        event_id = parsed.headers.get("event_id")
        return Accepted(id=event_id if isinstance(event_id, str) else None)

    @app.get("/events", response_model=EventList, tags=["developer"])
    async def events(
        project: str | None = Query(default=None, max_length=32),
        request_id: str | None = Query(default=None, max_length=128),
    ) -> EventList:
        """What arrived, oldest first (optionally one project's, or one request id's)."""
        selected = [
            received
            for received in state.events
            if (project is None or received.project == project)
            and (
                request_id is None
                or (received.event.get("tags") or {}).get("request_id") == request_id
            )
        ]
        return EventList(events=selected, other_items=state.other_items)

    @app.post("/reset", status_code=204, tags=["developer"])
    async def reset() -> None:
        """Forget everything."""
        state.events.clear()
        state.other_items = 0

    return app
