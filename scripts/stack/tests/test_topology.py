"""The runner's wiring of the Sentry and OTLP stand-ins: every service reports and traces to them
unless told otherwise."""

from pathlib import Path

import pytest

from storefront_stack.platform import Platform, PlatformOptions
from storefront_stack.topology import SANDBOXES, SERVICES, Endpoints, service_env

ORDERS = next(s for s in SERVICES if s.name == "orders")


def _endpoints() -> Endpoints:
    return Endpoints(
        postgres_url="postgresql://storefront@127.0.0.1:5432",
        redis_url="redis://127.0.0.1:6379/0",
        elasticsearch_url="http://127.0.0.1:9200",
        service_ports={s.name: s.port for s in SERVICES},
        sandbox_ports={s.name: 9000 + i for i, s in enumerate(SANDBOXES)},
    )


@pytest.mark.parametrize(
    ("sandbox", "variable", "url"),
    [
        ("sentry", "STOREFRONT_SENTRY_DSN", "http://storefront@127.0.0.1:{port}/1"),
        ("otlp", "STOREFRONT_OTLP_ENDPOINT", "http://127.0.0.1:{port}"),
    ],
)
def test_every_service_reports_to_the_stand_in_and_without_it_to_nothing(
    sandbox: str, variable: str, url: str
) -> None:
    endpoints = _endpoints()
    port = endpoints.sandbox_ports[sandbox]
    for service in SERVICES:
        env = service_env(service, endpoints, platform_env={})
        assert env[variable] == url.format(port=port)
        # The stand-in is no API a service calls.
        assert f"{service.env_prefix}{sandbox.upper()}_API_URL" not in env
    del endpoints.sandbox_ports[sandbox]
    assert variable not in service_env(ORDERS, endpoints, platform_env={})


def test_every_service_calls_the_telegram_stand_in() -> None:
    endpoints = _endpoints()
    for service in SERVICES:
        env = service_env(service, endpoints, platform_env={})
        assert env[f"{service.env_prefix}TELEGRAM_API_URL"].startswith("http://127.0.0.1:")


def test_a_configured_dsn_wins_over_the_stand_in() -> None:
    real = "https://abc@errors.example/7"
    shared = service_env(ORDERS, _endpoints(), platform_env={"STOREFRONT_SENTRY_DSN": real})
    assert shared["STOREFRONT_SENTRY_DSN"] == real
    overridden = service_env(
        ORDERS, _endpoints(), platform_env={}, overrides={"STOREFRONT_SENTRY_DSN": real}
    )
    assert overridden["STOREFRONT_SENTRY_DSN"] == real


def test_a_configured_collector_wins_and_an_empty_one_turns_tracing_off() -> None:
    collector = "http://otel-collector:4318"
    configured = service_env(
        ORDERS, _endpoints(), platform_env={"STOREFRONT_OTLP_ENDPOINT": collector}
    )
    assert configured["STOREFRONT_OTLP_ENDPOINT"] == collector
    # An empty override turns tracing off (what a benchmark's "off" run does).
    off = service_env(
        ORDERS, _endpoints(), platform_env={}, overrides={"STOREFRONT_OTLP_ENDPOINT": ""}
    )
    assert off["STOREFRONT_OTLP_ENDPOINT"] == ""


def test_runner_platforms_trace_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STOREFRONT_OTLP_ENDPOINT", raising=False)
    off = Platform(PlatformOptions(state_dir=tmp_path / "off"))
    on = Platform(PlatformOptions(state_dir=tmp_path / "on", tracing=True))
    # Empty: service_env keeps it, the services install nothing (benchmarks, by default).
    assert off._tracing_env() == {"STOREFRONT_OTLP_ENDPOINT": ""}
    # Unset: service_env points every service at the OTLP stand-in (make run, the tests).
    assert on._tracing_env() == {}
    # What the runner's own environment says wins, an empty value (off) included.
    monkeypatch.setenv("STOREFRONT_OTLP_ENDPOINT", "")
    assert on._tracing_env() == {"STOREFRONT_OTLP_ENDPOINT": ""}
    monkeypatch.setenv("STOREFRONT_OTLP_ENDPOINT", "http://collector:4318")
    assert off._tracing_env() == {"STOREFRONT_OTLP_ENDPOINT": "http://collector:4318"}
