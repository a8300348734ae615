"""Prometheus metrics shared by all services, and the ``/metrics`` endpoint."""

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.responses import Response

__all__ = ["HTTP_REQUESTS", "HTTP_REQUESTS_QUEUED", "HTTP_REQUEST_DURATION", "metrics_router"]

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests handled.", ["service", "method", "route", "status"]
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time spent handling HTTP requests.",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
HTTP_REQUESTS_QUEUED = Gauge(
    "http_requests_queued",
    "HTTP requests waiting for the admission limit (not yet being worked on).",
    ["service"],
)


def metrics_router() -> APIRouter:
    """``GET /metrics`` in the Prometheus text format (never exposed by the gateway)."""
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
