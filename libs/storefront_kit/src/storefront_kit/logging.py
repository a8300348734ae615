"""Structured JSON logging through structlog, with the request id merged in.

Every line, ours or a library's, passes :func:`scrub_sensitive` last before it is
rendered (exception text included): phone numbers, one-time codes, tokens of every
kind, addresses and card numbers never reach a log, whoever wrote the line.
"""

import logging
import sys
from typing import Any

import structlog

from storefront_kit.scrubbing import REDACTED, scrub_sensitive, scrub_text
from storefront_kit.tracing import add_trace_ids

__all__ = ["REDACTED", "configure_logging", "get_logger", "scrub_sensitive", "scrub_text"]


def configure_logging(*, service: str, level: str = "INFO", json: bool = True) -> None:
    """Route structlog and the standard library through one JSON (or console) renderer.

    With tracing on (:mod:`storefront_kit.tracing`), a line logged inside a sampled span
    carries its ``trace_id`` and ``span_id``.
    """
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        _add_service(service),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            # Last before rendering: it sees every line, its exception text included.
            scrub_sensitive,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log duplicates ours (which carries the request id).
    logging.getLogger("uvicorn.access").handlers[:] = []
    logging.getLogger("uvicorn.access").propagate = False
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Client libraries that log every request at INFO (elasticsearch-py's transport,
    # httpx) would drown the service's own lines; their failures still surface as
    # WARNING or as the exceptions our code logs.
    for name in ("elastic_transport", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def _add_service(service: str) -> structlog.types.Processor:
    def processor(_: Any, __: str, event_dict: structlog.types.EventDict) -> Any:
        event_dict.setdefault("service", service)
        return event_dict

    return processor


def get_logger(name: str | None = None) -> Any:
    """A structlog logger; module-level loggers are cheap and lazy."""
    return structlog.get_logger(name)
