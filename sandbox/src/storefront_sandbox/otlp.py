"""OTLP stand-in: receives the services' traces (OTLP/HTTP protobuf) and lists the spans.

The OpenTelemetry SDK's ``OTLPSpanExporter`` (``opentelemetry-exporter-otlp-proto-http``)
pointed at ``http://<this host>`` posts ``/v1/traces``: an ``ExportTraceServiceRequest``
(``opentelemetry-proto``), ``Content-Type: application/x-protobuf``, gzip- or
deflate-compressed as ``Content-Encoding`` says. Spans are kept in memory, oldest first,
flattened to JSON (ids in hex, the service from the resource's ``service.name``), up to
:data:`MAX_SPANS` (the oldest are dropped first).
"""

import zlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from pydantic import BaseModel

from storefront_sandbox.problems import ProblemError, problem_responses
from storefront_sandbox.web import decoded_body, new_app

__all__ = ["MAX_SPANS", "ReceivedSpan", "create_app", "spans_of"]

MAX_SPANS = 50_000
MAX_BODY_BYTES = 20 * 1024 * 1024
# Span.SpanKind numbers (opentelemetry/proto/trace/v1/trace.proto).
_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


class ReceivedSpan(BaseModel):
    """One span as it arrived, flattened."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    service: str
    start_ns: int
    end_ns: int
    status: str
    attributes: dict[str, Any]
    links: list[dict[str, str]]


class SpanList(BaseModel):
    spans: list[ReceivedSpan]
    dropped: int


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if which == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, which)


def _attributes(pairs: "Iterable[KeyValue]") -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def spans_of(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    """The spans of one export request, flattened."""
    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        service = str(resource.get("service.name", ""))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        name=span.name,
                        kind=_KINDS.get(span.kind, str(span.kind)),
                        service=service,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        status=_STATUS.get(span.status.code, str(span.status.code)),
                        attributes=_attributes(span.attributes),
                        links=[
                            {"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex()}
                            for link in span.links
                        ],
                    )
                )
    return spans


@dataclass
class OtlpState:
    spans: deque[ReceivedSpan] = field(default_factory=lambda: deque(maxlen=MAX_SPANS))
    dropped: int = 0


def create_app() -> FastAPI:
    """The OTLP stand-in (``--factory`` entry point)."""
    state = OtlpState()
    app = new_app(
        title="OTLP sandbox",
        description="Stand-in trace collector: receives OTLP/HTTP protobuf spans, lists them.",
    )

    @app.post(
        "/v1/traces",
        response_class=Response,
        responses={
            200: {"content": {"application/x-protobuf": {}}},
            **problem_responses(400, 413, 415),
        },
        tags=["ingest"],
    )
    async def traces(request: Request) -> Response:
        """Take one export request (what ``OTLPSpanExporter`` sends)."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-protobuf":
            raise ProblemError(
                415, "unsupported_media_type", "Only application/x-protobuf is accepted."
            )
        try:
            body = await decoded_body(
                request,
                limit=MAX_BODY_BYTES,
                code="export_too_large",
                detail="The export request is too large.",
            )
            export = ExportTraceServiceRequest.FromString(body)
        except (ValueError, OSError, EOFError, zlib.error, DecodeError) as exc:
            raise ProblemError(400, "malformed_export", f"Not an OTLP export: {exc}") from None
        received = spans_of(export)
        overflow = len(state.spans) + len(received) - MAX_SPANS
        if overflow > 0:
            state.dropped += overflow
        state.spans.extend(received)
        return Response(
            ExportTraceServiceResponse().SerializeToString(),
            media_type="application/x-protobuf",
        )

    @app.get("/spans", response_model=SpanList, tags=["developer"])
    async def spans(
        trace_id: str | None = Query(default=None, pattern=r"^[0-9a-f]{32}$"),
        service: str | None = Query(default=None, max_length=64),
        name: str | None = Query(default=None, max_length=200),
    ) -> SpanList:
        """What arrived, oldest first (optionally one trace's, one service's, one name's)."""
        selected = [
            span
            for span in state.spans
            if (trace_id is None or span.trace_id == trace_id)
            and (service is None or span.service == service)
            and (name is None or span.name == name)
        ]
        return SpanList(spans=selected, dropped=state.dropped)

    @app.post("/reset", status_code=204, tags=["developer"])
    async def reset() -> None:
        """Forget everything."""
        state.spans.clear()
        state.dropped = 0

    return app
