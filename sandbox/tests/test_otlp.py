"""The OTLP stand-in: what the SDK's own OTLP/HTTP exporter sends arrives as listed spans."""

import gzip
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind
from starlette.types import ASGIApp

from storefront_sandbox import otlp as otlp_module

ServeApp = Callable[[ASGIApp], AbstractContextManager[str]]


def _export(url: str, compression: Compression) -> tuple[str, str, str]:
    provider = TracerProvider(resource=Resource.create({"service.name": "orders"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces", compression=compression))
    )
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("POST /api/v1/orders", kind=SpanKind.SERVER) as parent:
        parent.set_attribute("http.response.status_code", 201)
        with tracer.start_as_current_span("POST", kind=SpanKind.CLIENT) as child:
            child.set_attribute("url.full", "http://payments/v1/payments")
    provider.shutdown()
    trace_id = f"{parent.get_span_context().trace_id:032x}"
    return (
        trace_id,
        f"{parent.get_span_context().span_id:016x}",
        f"{child.get_span_context().span_id:016x}",
    )


def test_spans_exported_by_the_sdk_are_listed_with_their_parents(serve_app: ServeApp) -> None:
    app = otlp_module.create_app()
    with serve_app(app) as url:
        for compression in (Compression.NoCompression, Compression.Gzip):
            trace_id, parent_id, child_id = _export(url, compression)
            listed = httpx.get(f"{url}/spans", params={"trace_id": trace_id}).json()
            by_id = {span["span_id"]: span for span in listed["spans"]}
            assert set(by_id) == {parent_id, child_id}
            assert by_id[parent_id]["parent_span_id"] is None
            assert by_id[parent_id]["kind"] == "SERVER"
            assert by_id[parent_id]["service"] == "orders"
            assert by_id[parent_id]["attributes"]["http.response.status_code"] == 201
            assert by_id[child_id]["parent_span_id"] == parent_id
            assert by_id[child_id]["kind"] == "CLIENT"
            assert by_id[child_id]["attributes"]["url.full"] == "http://payments/v1/payments"
        assert len(httpx.get(f"{url}/spans", params={"service": "orders"}).json()["spans"]) == 4
        assert httpx.post(f"{url}/reset").status_code == 204
        assert httpx.get(f"{url}/spans").json()["spans"] == []


def test_what_is_not_an_otlp_export_is_refused(serve_app: ServeApp) -> None:
    app = otlp_module.create_app()
    with serve_app(app) as url:
        json_body = httpx.post(f"{url}/v1/traces", json={"resourceSpans": []})
        assert json_body.status_code == 415
        garbage = httpx.post(
            f"{url}/v1/traces",
            content=b"\xff\xff\xff",
            headers={"content-type": "application/x-protobuf"},
        )
        assert garbage.status_code == 400
        assert garbage.json()["code"] == "malformed_export"
        broken_gzip = httpx.post(
            f"{url}/v1/traces",
            content=gzip.compress(b"x")[:-4],
            headers={"content-type": "application/x-protobuf", "content-encoding": "gzip"},
        )
        assert broken_gzip.status_code == 400
