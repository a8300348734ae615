"""Error reporting: an unhandled error reaches Sentry (the sandbox stand-in) scrubbed.

A real uvicorn runs a kit-built service with a failing route (tests/error_reporting_app.py)
and ``DEMO_SENTRY_DSN`` pointing at the Sentry stand-in, also under a real uvicorn; the
report that arrives carries the request id, the trace id of the ``traceparent`` sent
(none without one), the release and the environment, and no phone, token or address.
"""

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import sentry_sdk
from pydantic_settings import SettingsConfigDict

from storefront_kit.app import create_service_app
from storefront_kit.error_reporting import (
    error_reporting_enabled,
    scrub_event,
    trace_id_from_traceparent,
)
from storefront_kit.settings import PlatformSettings, ServiceSettings
from storefront_stack.serving import uvicorn_process

HERE = Path(__file__).resolve().parent
PHONE = "+491701234567"
BEARER = "Bearer sk9Xq2vLr7TzPw4NbYc1"
STREET = "Hauptstrasse 5"
POSTAL_CODE = "10115"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "SENTRY" not in k}
    env.update(
        STOREFRONT_ENVIRONMENT="test",
        STOREFRONT_GC_FREEZE="false",
        STOREFRONT_LOG_JSON="true",
        STOREFRONT_SENTRY_RELEASE="storefront@test-release",
    )
    return env


@pytest.fixture(scope="module")
def sentry_url() -> Iterator[str]:
    with uvicorn_process(
        "storefront_sandbox.sentry:create_app", _base_env(), stop_timeout_s=10
    ) as url:
        yield url


@pytest.fixture(scope="module")
def service_url(sentry_url: str) -> Iterator[str]:
    dsn = f"http://publickey@{sentry_url.removeprefix('http://')}/42"
    # Deprecations are errors, as in the suite: the SDK's options must be current ones.
    env = {**_base_env(), "DEMO_SENTRY_DSN": dsn, "PYTHONWARNINGS": "error::DeprecationWarning"}
    with uvicorn_process(
        "error_reporting_app:create_app", env, app_dir=HERE, stop_timeout_s=10
    ) as url:
        yield url


def _crash(service_url: str, request_id: str, headers: dict[str, str] | None = None) -> None:
    response = httpx.post(
        f"{service_url}/customers/{PHONE}/crash",
        params={"phone": PHONE},
        headers={"Authorization": BEARER, "X-Request-ID": request_id, **(headers or {})},
        json={
            "phone": PHONE,
            "address": {"line1": STREET, "city": "Berlin", "postal_code": POSTAL_CODE},
        },
        timeout=10,
    )
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"


def _arrived(sentry_url: str, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        events = httpx.get(f"{sentry_url}/events", params={"request_id": request_id}).json()[
            "events"
        ]
        if events:
            assert len(events) == 1, events  # reported once, not again by the log line
            return dict(events[0])
        assert time.monotonic() < deadline, f"no report for {request_id} arrived"
        time.sleep(0.1)


def test_an_unhandled_error_arrives_with_request_and_trace_ids_and_without_personal_data(
    sentry_url: str, service_url: str
) -> None:
    _crash(service_url, "req-crash-traced-1", {"traceparent": TRACEPARENT})
    received = _arrived(sentry_url, "req-crash-traced-1")
    event = received["event"]

    assert received["project"] == "42"
    assert event["tags"]["request_id"] == "req-crash-traced-1"
    assert event["tags"]["trace_id"] == TRACE_ID
    assert event["tags"]["service"] == "demo"
    assert event["release"] == "storefront@test-release"
    assert event["environment"] == "test"
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert exception["value"].startswith("could not ship for ")
    assert "[redacted]" in exception["value"]
    # The request is described (so the scrubber had it to clean), its secrets masked.
    assert "/customers/" in event["request"]["url"]
    assert event["request"]["data"]["address"] == "[redacted]"
    assert event["request"]["headers"]["authorization"] == "[redacted]"

    sent = json.dumps(received)
    for personal in (PHONE, PHONE.removeprefix("+"), "sk9Xq2vLr7TzPw4NbYc1", STREET, POSTAL_CODE):
        assert personal not in sent, f"{personal!r} reached Sentry"


def test_without_a_traceparent_the_report_has_no_trace_id(
    sentry_url: str, service_url: str
) -> None:
    _crash(service_url, "req-crash-untraced-1")
    event = _arrived(sentry_url, "req-crash-untraced-1")["event"]
    assert event["tags"]["request_id"] == "req-crash-untraced-1"
    assert "trace_id" not in event["tags"]


def test_a_handled_problem_is_not_reported(sentry_url: str, service_url: str) -> None:
    response = httpx.get(f"{service_url}/no-such-route", headers={"X-Request-ID": "req-404-one"})
    assert response.status_code == 404
    _crash(service_url, "req-after-404-1")  # reports are sent in order: this one after
    _arrived(sentry_url, "req-after-404-1")
    events = httpx.get(f"{sentry_url}/events", params={"request_id": "req-404-one"}).json()[
        "events"
    ]
    assert events == []


def test_no_integration_wraps_each_query_command_or_call(service_url: str) -> None:
    # Breadcrumbs of every SQL statement, Redis command and HTTP call cost 5-9% of a
    # service's CPU (issue 17); the request's context and log lines are what a report uses.
    response = httpx.get(f"{service_url}/sentry-integrations")
    integrations = set(response.json())
    assert {"starlette", "fastapi", "logging"} <= integrations, integrations
    assert not integrations & {"asyncpg", "sqlalchemy", "redis", "httpx"}, integrations


class _Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NODSN_", extra="ignore")
    service_name: ClassVar[str] = "nodsn"


def test_without_a_dsn_nothing_is_initialised() -> None:
    assert not error_reporting_enabled()
    settings = _Settings(platform=PlatformSettings(sentry_dsn=""), sentry_dsn="")
    create_service_app(
        settings=settings,
        title="No DSN",
        description="",
        version="1",
        lifespan=_no_lifespan,
        routers=[],
        health_checks=lambda _: [],
    )
    assert not error_reporting_enabled()
    assert sentry_sdk.get_client().dsn is None


def _no_lifespan(app: Any) -> Any:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def nothing(_: Any) -> Any:
        yield

    return nothing(app)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (TRACEPARENT, TRACE_ID),
        (TRACEPARENT.upper(), TRACE_ID),
        ("00-" + "0" * 32 + "-00f067aa0ba902b7-01", None),
        ("00-short-00f067aa0ba902b7-01", None),
        ("", None),
        (None, None),
    ],
)
def test_trace_id_from_traceparent(header: str | None, expected: str | None) -> None:
    assert trace_id_from_traceparent(header) == expected


def test_scrub_event_masks_exception_breadcrumbs_request_and_extra() -> None:
    event = {
        "exception": {"values": [{"type": "E", "value": f"failed for {PHONE} with {BEARER}"}]},
        "breadcrumbs": {"values": [{"message": f"GET /x?phone={PHONE}", "data": {"token": "t"}}]},
        "request": {
            "url": f"http://svc/customers/{PHONE}",
            "headers": {"Authorization": BEARER, "Accept": "application/json"},
            "data": {"address": {"line1": STREET}, "note": "hi"},
        },
        "extra": {"shipping_address": STREET, "count": 3},
    }
    scrubbed = scrub_event(event)
    text = json.dumps(scrubbed)
    for personal in (PHONE, "sk9Xq2vLr7TzPw4NbYc1", STREET):
        assert personal not in text
    assert scrubbed["request"]["headers"]["Accept"] == "application/json"
    assert scrubbed["request"]["data"]["note"] == "hi"
    assert scrubbed["extra"]["count"] == 3
    assert scrubbed["breadcrumbs"]["values"][0]["data"]["token"] == "[redacted]"
