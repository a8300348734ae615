"""Distributed tracing with OpenTelemetry: one trace per request, across services and streams.

The service passes where to export (an OTLP/HTTP endpoint) and how much to keep (a sample
ratio); this module reads no configuration. No endpoint: nothing is installed — no
provider, no instrumentation, neither imported — and every helper here returns at its
first line.

With an endpoint, :func:`init_tracing` installs a global ``TracerProvider`` exporting
batches over OTLP/HTTP (``<endpoint>/v1/traces``) and the instrumentations:

- HTTP served: FastAPI's own telemetry (a ``SERVER`` span per request, continuing the
  W3C ``traceparent`` the request came with; health and metrics routes left out);
- HTTP called: ``opentelemetry-instrumentation-httpx`` (a ``CLIENT`` span per call,
  ``traceparent`` injected into every outgoing request to another service) and, where
  aiohttp is installed, ``opentelemetry-instrumentation-aiohttp-client`` (the same for
  aiohttp: orders' calls to inventory and the payment and shipping providers through
  :func:`storefront_kit.http.create_aiohttp_session`, notifications' bot to Telegram);
- PostgreSQL: ``opentelemetry-instrumentation-sqlalchemy`` on every engine the kit's
  :func:`storefront_kit.db.create_engine` makes;
- Redis: ``opentelemetry-instrumentation-redis`` (commands, arguments never recorded);
- Elasticsearch: the official client traces itself through the OpenTelemetry API.

Stream events carry the context that caused them: :meth:`EventEnvelope.new
<storefront_kit.events.EventEnvelope.new>` stamps the current ``traceparent`` into the
envelope, the outbox relay publishes each event under a ``PRODUCER`` span of that trace
(:func:`publish_spans`), and :class:`~storefront_kit.events.StreamConsumer` handles it
under a ``CONSUMER`` span, child of the relay's (:func:`consume_span`).

Only entry points start traces: a span with no parent is sampled (at the configured
ratio) when it is a ``SERVER`` or ``CONSUMER`` span; a background loop's own database
polls and Redis reads (the outbox relay, stream reads, dependency watches) are dropped
rather than each becoming a trace of one span. URLs and query strings in span
attributes pass the log scrubber (:func:`storefront_kit.scrubbing.scrub_text`): a bot
token in a Telegram URL or a phone in a query never reaches the tracing backend.
"""

import importlib.util
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from storefront_kit.scrubbing import scrub_text

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span

__all__ = [
    "TRACEPARENT",
    "add_trace_ids",
    "consume_span",
    "consume_spans",
    "current_traceparent",
    "end_consume_span",
    "fastapi_telemetry",
    "flush_tracing",
    "in_consume_span",
    "init_tracing",
    "publish_spans",
    "tracing_enabled",
]

#: The W3C Trace Context header (and envelope field) carrying a span's context.
TRACEPARENT = "traceparent"
_TRACER_NAME = "storefront_kit"
# Span attributes holding a URL or a part of one: scrubbed when the span starts.
_URL_ATTRIBUTES = ("url.full", "url.query", "url.path", "http.url", "http.target")
# Routes whose requests are never traced (probes and scrapes, several a second).
_UNTRACED_PREFIXES = ("/health/", "/metrics")

_provider: "TracerProvider | None" = None


def tracing_enabled() -> bool:
    """True once :func:`init_tracing` installed a provider in this process."""
    return _provider is not None


def init_tracing(
    *,
    endpoint: str | None,
    service: str,
    version: str,
    environment: str,
    sample_ratio: float = 1.0,
    export_delay_ms: int = 5000,
) -> bool:
    """Export traces to ``endpoint`` (an OTLP/HTTP base URL); without one, do nothing.

    Idempotent within a process: a second call (a second app in tests) keeps the first
    provider. Returns whether tracing is on.
    """
    global _provider
    if not endpoint:
        return False
    if _provider is not None:
        return True
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased

    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": service,
                "service.namespace": "storefront",
                "service.version": version,
                "deployment.environment.name": environment,
            }
        ),
        sampler=ParentBased(root=_entry_point_sampler(sample_ratio)),
    )
    provider.add_span_processor(_scrubbing_processor())
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", timeout=10),
            schedule_delay_millis=export_delay_ms,
        )
    )
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    if importlib.util.find_spec("aiohttp") is not None:
        # Only a service that has aiohttp calls out with it (orders, notifications); the
        # instrumentation imports it, and the others' images do not install it.
        from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

        AioHttpClientInstrumentor().instrument(tracer_provider=provider)
    RedisInstrumentor().instrument(tracer_provider=provider)
    # Declared for SQLAlchemy < 2.1; the engine events it listens to are unchanged in 2.1.
    SQLAlchemyInstrumentor().instrument(tracer_provider=provider, skip_dep_check=True)
    _provider = provider
    return True


def flush_tracing(timeout_s: float = 5.0) -> None:
    """Export the spans still buffered (a stopping service's last ones), up to ``timeout_s``."""
    if _provider is not None:
        _provider.force_flush(timeout_millis=int(timeout_s * 1000))


def fastapi_telemetry() -> "TelemetryConfig":
    """``FastAPI(telemetry=...)``: server spans when tracing is on, no metrics or logs.

    FastAPI's metrics and logs stay off (the services have Prometheus and their JSON
    logs), and so do its spans around each dependency and serialisation (a request's
    trace is its calls to other services, the database, Redis and the providers).
    """
    return {
        "tracing": True,
        "metrics": False,
        "logs": False,
        "operation_spans": False,
        "auto_configure": False,
        "exclude": _untraced,
    }


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    # A WebSocket is no request: its span would last as long as the socket (hours) and
    # hold its objects all that time, about 8 KiB a socket (docs/benchmarks.md, issue
    # 20). What a socket is sent joins the trace that caused it through the stream
    # consumers' spans instead.
    if scope.get("type") == "websocket":
        return True
    path = scope.get("path", "")
    return isinstance(path, str) and path.startswith(_UNTRACED_PREFIXES)


def _entry_point_sampler(ratio: float) -> Any:
    from opentelemetry.sdk.trace.sampling import (
        Decision,
        Sampler,
        SamplingResult,
        TraceIdRatioBased,
    )
    from opentelemetry.trace import SpanKind

    entry_kinds = (SpanKind.SERVER, SpanKind.CONSUMER)

    class EntryPointSampler(Sampler):
        """Roots: ``SERVER``/``CONSUMER`` spans at ``ratio``; any other root is dropped."""

        def __init__(self) -> None:
            self._ratio = TraceIdRatioBased(ratio)

        def should_sample(
            self,
            parent_context: Any,
            trace_id: int,
            name: str,
            kind: SpanKind | None = None,
            attributes: Any = None,
            links: Sequence[Any] | None = None,
            trace_state: Any = None,
        ) -> SamplingResult:
            if kind not in entry_kinds:
                return SamplingResult(Decision.DROP)
            return self._ratio.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )

        def get_description(self) -> str:
            return f"EntryPoint{{{self._ratio.get_description()}}}"

    return EntryPointSampler()


def _scrubbing_processor() -> Any:
    from opentelemetry.sdk.trace import SpanProcessor

    class ScrubbingProcessor(SpanProcessor):
        """Masks credentials and personal data in URL attributes as a span starts."""

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            attributes = span.attributes or {}
            for key in _URL_ATTRIBUTES:
                value = attributes.get(key)
                if isinstance(value, str):
                    scrubbed = scrub_text(value)
                    if scrubbed != value:
                        span.set_attribute(key, scrubbed)

    return ScrubbingProcessor()


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, or None (no span, tracing off)."""
    if _provider is None:
        return None
    from opentelemetry.trace import get_current_span

    context = get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return _format(context)


def _format(context: Any) -> str:
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def _messaging(operation: str, stream: str, event_type: str) -> dict[str, str]:
    """The messaging attributes of a span about one event on a Redis stream."""
    return {
        "messaging.system": "redis",
        "messaging.operation.type": operation,
        "messaging.destination.name": stream,
        "storefront.event.type": event_type,
    }


def _parent(traceparent: str | None) -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not traceparent:
        return None
    return TraceContextTextMapPropagator().extract({TRACEPARENT: traceparent})


def consume_span(
    *, stream: str, group: str, event_type: str, event_id: str, traceparent: str | None
) -> Any:
    """The ``CONSUMER`` span an event is handled in: a child of ``traceparent``.

    A context manager; without tracing (or in a process without a provider) a no-op.
    """
    if _provider is None:
        return nullcontext()
    return _consume_span(
        stream=stream,
        group=group,
        event_type=event_type,
        event_id=event_id,
        traceparent=traceparent,
    )


@contextmanager
def _consume_span(
    *, stream: str, group: str, event_type: str, event_id: str, traceparent: str | None
) -> Iterator["Span"]:
    from opentelemetry import trace

    tracer = trace.get_tracer(_TRACER_NAME)
    with tracer.start_as_current_span(
        **_consume_span_options(stream, group, event_type, event_id, traceparent)
    ) as span:
        yield span


def _consume_span_options(
    stream: str, group: str, event_type: str, event_id: str, traceparent: str | None
) -> dict[str, Any]:
    """What a ``CONSUMER`` span of one event is opened with: name, parent, attributes."""
    from opentelemetry.trace import SpanKind

    return {
        "name": f"{stream} process",
        "context": _parent(traceparent),
        "kind": SpanKind.CONSUMER,
        "attributes": {
            **_messaging("process", stream, event_type),
            "messaging.consumer.group.name": group,
            "messaging.message.id": event_id,
        },
    }


def consume_spans(
    *, stream: str, group: str, events: Sequence[tuple[str, str, str | None]]
) -> list[Any]:
    """Started ``CONSUMER`` spans for a batch handled together: one per event, none current.

    ``events``: ``(event type, event id, traceparent)`` per event. Each span is what
    :func:`consume_span` would have opened for the event alone; the caller makes one
    current with :func:`in_consume_span` for the work done for its event only, and ends
    each with :func:`end_consume_span`. Without tracing: ``None`` per event.
    """
    if _provider is None:
        return [None] * len(events)
    from opentelemetry import trace

    tracer = trace.get_tracer(_TRACER_NAME)
    return [tracer.start_span(**_consume_span_options(stream, group, *event)) for event in events]


def in_consume_span(span: Any) -> Any:
    """A context manager making a span of :func:`consume_spans` current (it stays open;
    the outcome is recorded when it ends). ``None``: a no-op."""
    if span is None:
        return nullcontext()
    from opentelemetry import trace

    return trace.use_span(
        span, end_on_exit=False, record_exception=False, set_status_on_exception=False
    )


def end_consume_span(span: Any, error: BaseException | None = None) -> None:
    """End a span of :func:`consume_spans`, marked failed with ``error`` when given."""
    if span is None:
        return
    if error is not None:
        from opentelemetry.trace import Status, StatusCode

        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()


@contextmanager
def publish_spans(
    stream_of: Sequence[tuple[str, str, str | None]],
) -> Iterator[list[str | None]]:
    """``PRODUCER`` spans for a batch the outbox relay publishes: one per event.

    ``stream_of``: ``(stream, event type, traceparent)`` per event. Yields, per event,
    the ``traceparent`` to publish it with (its ``PRODUCER`` span's, a child of the
    context that staged it), or the one it had when it has none or tracing is off. The
    spans end when the block does (after the batch's ``XADD``).
    """
    if _provider is None:
        yield [traceparent for _stream, _type, traceparent in stream_of]
        return
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    tracer = trace.get_tracer(_TRACER_NAME)
    spans: list[Span] = []
    carried: list[str | None] = []
    for stream, event_type, traceparent in stream_of:
        if not traceparent:
            carried.append(None)
            continue
        span = tracer.start_span(
            f"{stream} publish",
            context=_parent(traceparent),
            kind=SpanKind.PRODUCER,
            attributes=_messaging("send", stream, event_type),
        )
        spans.append(span)
        carried.append(_format(span.get_span_context()))
    try:
        yield carried
    finally:
        for span in spans:
            span.end()


def add_trace_ids(_: Any, __: str, event_dict: Any) -> Any:
    """A structlog processor: ``trace_id`` and ``span_id`` of the current sampled span."""
    if _provider is None:
        return event_dict
    from opentelemetry.trace import get_current_span

    context = get_current_span().get_span_context()
    if context.is_valid and context.trace_flags.sampled:
        event_dict.setdefault("trace_id", f"{context.trace_id:032x}")
        event_dict.setdefault("span_id", f"{context.span_id:016x}")
    return event_dict
