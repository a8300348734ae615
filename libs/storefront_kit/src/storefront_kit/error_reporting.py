"""Error reporting to Sentry (``sentry-sdk``), with personal data scrubbed before it leaves.

The service passes what to report to (its DSN) and the tags (release, environment); this
module reads no configuration. No DSN: nothing is initialised and nothing is sent.

What an event carries besides the exception: the service, the request id, the trace id
of the W3C ``traceparent`` the request came with (none without one), the release and the
environment. What it never carries: personal data. ``send_default_pii`` is off (left
unset: no cookies, no client address, no user), local variables are not attached, and
:func:`scrub_event` (``before_send``) runs the log scrubber
(:func:`storefront_kit.logging.scrub_sensitive`) over the exception values, the
breadcrumbs, the request (URL, query, headers, body) and the extra data, so the same
phones, codes, tokens, addresses and card numbers masked in the logs are masked here.
"""

import logging
import re
from collections.abc import Mapping
from typing import Any

from storefront_kit.request_id import current_request_id
from storefront_kit.scrubbing import scrub_sensitive
from storefront_kit.tracing import current_traceparent

__all__ = [
    "error_reporting_enabled",
    "init_error_reporting",
    "report_exception",
    "scrub_event",
    "trace_id_from_traceparent",
]

# version-traceid-parentid-flags; an all-zero trace id is invalid (W3C Trace Context §3.2).
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-(?P<trace_id>[0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_TRACEPARENT_HEADER = b"traceparent"
# Parts of an event that hold what the request or the code said (the rest is the SDK's).
_SCRUBBED_PARTS = ("request", "extra", "contexts", "tags", "user", "message", "logentry")


def trace_id_from_traceparent(value: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` header, or None if it is absent or malformed."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None or match.group("trace_id") == "0" * 32:
        return None
    return match.group("trace_id")


def _scrub_value(key: str, value: Any) -> Any:
    # scrub_sensitive works on a structlog event dict: key names and string values.
    return scrub_sensitive(None, "", {key: value})[key]


def scrub_event(event: dict[str, Any], _hint: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``before_send``: the event with personal data and credentials masked.

    Exception values, stack-frame variables (should any be attached), breadcrumbs
    (messages and data), the request, extra data, contexts and the message all pass the
    log scrubber. Also fills in the request id when the event was captured outside the
    request's own scope.
    """
    for exception in (event.get("exception") or {}).get("values") or []:
        if isinstance(exception.get("value"), str):
            exception["value"] = _scrub_value("value", exception["value"])
        for frame in (exception.get("stacktrace") or {}).get("frames") or []:
            if "vars" in frame:
                frame["vars"] = _scrub_value("vars", frame["vars"])
    breadcrumbs = event.get("breadcrumbs")
    if isinstance(breadcrumbs, Mapping):
        breadcrumbs = breadcrumbs.get("values")
    for crumb in breadcrumbs or []:
        for part in ("message", "data"):
            if crumb.get(part):
                crumb[part] = _scrub_value(part, crumb[part])
    for part in _SCRUBBED_PARTS:
        if event.get(part):
            event[part] = _scrub_value(part, event[part])
    request_id = current_request_id()
    if request_id:
        event.setdefault("tags", {}).setdefault("request_id", request_id)
    return event


def init_error_reporting(*, dsn: str | None, service: str, release: str, environment: str) -> bool:
    """Start reporting unhandled errors to ``dsn``; with no DSN, do nothing (False)."""
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.fastapi import FastApiIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration
    from sentry_sdk.integrations.starlette import StarletteIntegration

    sentry_sdk.init(
        dsn=dsn,
        release=release,
        environment=environment,
        # send_default_pii stays unset, which is off (no cookies, client address or user;
        # sensitive headers filtered): sentry-sdk 2.75 deprecates passing it at all.
        include_local_variables=False,
        before_send=scrub_event,  # type: ignore[arg-type]
        # Only report_exception reports (the crash guard, an event given up on, a failed
        # saga): a problem the service answers on purpose (a 503 with Retry-After) is not
        # an error report, and log lines are breadcrumbs, never events (their exception
        # text is already in the report).
        integrations=[
            StarletteIntegration(failed_request_status_codes=set()),
            FastApiIntegration(failed_request_status_codes=set()),
            LoggingIntegration(level=logging.INFO, event_level=None),
        ],
        # Only these and the SDK's defaults (logging, excepthook, dedupe...): the
        # integrations it enables by itself for the installed asyncpg, SQLAlchemy,
        # Redis and httpx wrap every query, command and call to record a breadcrumb,
        # 5-9% of each service's CPU under a checkout load (issue 17, docs/benchmarks.md),
        # for crumbs that would be scrubbed of their values anyway. Log lines stay
        # breadcrumbs; tracing (OpenTelemetry) is where per-call detail belongs.
        auto_enabling_integrations=False,
        traces_sample_rate=None,
        # No sentry-trace/baggage headers on outgoing calls (providers included): trace
        # context travels as W3C traceparent, which is the tracing's business, not this.
        trace_propagation_targets=[],
    )
    # On the global scope: every event of the process, requests and background tasks alike.
    sentry_sdk.get_global_scope().set_tag("service", service)
    return True


def error_reporting_enabled() -> bool:
    """True once :func:`init_error_reporting` has started a client in this process."""
    try:
        import sentry_sdk
    except ImportError:  # pragma: no cover - a dependency of the kit
        return False
    return sentry_sdk.get_client().is_active()


def report_exception(exc: BaseException, *, headers: Any = ()) -> None:
    """Send ``exc`` (an unhandled error) with the request id and the trace id, if enabled.

    ``headers``: the ASGI request headers (pairs of bytes), for the ``traceparent``.
    """
    if not error_reporting_enabled():
        return
    import sentry_sdk

    traceparent = None
    for name, value in headers:
        if name == _TRACEPARENT_HEADER:
            traceparent = value.decode("latin-1")
            break
    with sentry_sdk.new_scope() as scope:
        request_id = current_request_id()
        if request_id:
            scope.set_tag("request_id", request_id)
        # The request's traceparent, else (tracing on) the trace the error happened in:
        # a background report (an event given up on, a failed saga) has one too.
        trace_id = trace_id_from_traceparent(traceparent) or trace_id_from_traceparent(
            current_traceparent()
        )
        if trace_id:
            scope.set_tag("trace_id", trace_id)
        sentry_sdk.capture_exception(exc)
