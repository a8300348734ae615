"""The Sentry stand-in: envelopes in (plain, gzip, with and without lengths), events out."""

import gzip
import json
import zlib
from collections.abc import AsyncIterator

import httpx
import pytest

from storefront_sandbox import sentry as sentry_module
from storefront_sandbox.sentry import parse_envelope


@pytest.fixture
async def sentry() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sentry_module.create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sentry") as client:
        yield client


def envelope(event: dict[str, object], *, with_length: bool = True) -> bytes:
    payload = json.dumps(event).encode()
    item = {"type": "event", "content_type": "application/json"}
    if with_length:
        item["length"] = len(payload)  # type: ignore[assignment]
    session = json.dumps({"sid": "s1", "status": "ok"}).encode()
    return b"\n".join(
        [
            json.dumps({"event_id": event["event_id"], "dsn": "http://k@h/3"}).encode(),
            json.dumps(item).encode(),
            payload,
            json.dumps({"type": "session"}).encode(),
            session,
        ]
    )


def event(event_id: str, request_id: str) -> dict[str, object]:
    return {"event_id": event_id, "level": "error", "tags": {"request_id": request_id}}


async def test_a_plain_envelope_is_listed_with_its_project(sentry: httpx.AsyncClient) -> None:
    response = await sentry.post("/api/3/envelope/", content=envelope(event("e1", "r-1")))
    assert response.status_code == 200
    assert response.json() == {"id": "e1"}
    listed = (await sentry.get("/events")).json()
    assert listed["other_items"] == 1  # the session
    (received,) = listed["events"]
    assert received["project"] == "3"
    assert received["type"] == "event"
    assert received["event"]["tags"] == {"request_id": "r-1"}


@pytest.mark.parametrize(
    ("encoding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress)]
)
async def test_a_compressed_envelope_is_read(
    sentry: httpx.AsyncClient, encoding: str, compress: object
) -> None:
    assert callable(compress)
    body = compress(envelope(event("e2", "r-2"), with_length=False))
    response = await sentry.post(
        "/api/5/envelope/", content=body, headers={"Content-Encoding": encoding}
    )
    assert response.status_code == 200
    (received,) = (await sentry.get("/events")).json()["events"]
    assert received["event"]["event_id"] == "e2"


async def test_events_are_filtered_by_project_and_request_id(sentry: httpx.AsyncClient) -> None:
    await sentry.post("/api/1/envelope/", content=envelope(event("a", "r-a")))
    await sentry.post("/api/2/envelope/", content=envelope(event("b", "r-b")))
    by_project = (await sentry.get("/events", params={"project": "2"})).json()
    assert [e["event"]["event_id"] for e in by_project["events"]] == ["b"]
    by_request = (await sentry.get("/events", params={"request_id": "r-a"})).json()
    assert [e["event"]["event_id"] for e in by_request["events"]] == ["a"]
    assert (await sentry.post("/reset")).status_code == 204
    assert (await sentry.get("/events")).json() == {"events": [], "other_items": 0}


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"not json\n", {}),
        (b"garbage", {"Content-Encoding": "gzip"}),
        (b'{}\n{"type": "event", "length": 100}\n{}', {}),
        (b"{}", {"Content-Encoding": "compress"}),
    ],
)
async def test_a_malformed_envelope_is_a_400_problem(
    sentry: httpx.AsyncClient, body: bytes, headers: dict[str, str]
) -> None:
    response = await sentry.post("/api/1/envelope/", content=body, headers=headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "malformed_envelope"


def test_an_item_payload_may_hold_newlines_when_its_length_is_given() -> None:
    payload = b'{"message":\n "spans two lines"}'
    raw = b'{"event_id": "e"}\n' + json.dumps({"type": "event", "length": len(payload)}).encode()
    parsed = parse_envelope(raw + b"\n" + payload + b"\n")
    assert parsed.headers == {"event_id": "e"}
    assert parsed.items == [({"type": "event", "length": len(payload)}, json.loads(payload))]
