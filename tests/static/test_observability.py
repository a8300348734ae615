"""deploy/prometheus and deploy/grafana stay true to what the services expose.

The metric names come from the code itself: every ``Counter``/``Gauge``/``Histogram``
declared in ``libs/*/src`` and ``services/*/src``, expanded to the sample names
prometheus_client writes (``_total`` for counters, ``_bucket``/``_sum``/``_count`` for
histograms). Every metric the dashboard queries must be one of them, and every question
of docs/operations.md must have its panel.
"""

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from storefront_stack.topology import SERVICES

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO_ROOT / "deploy" / "prometheus"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "storefront-operations.json"
OPERATIONS_DOC = REPO_ROOT / "docs" / "operations.md"

#: The operators' questions (issue 21) and the metric that answers each.
QUESTIONS = {
    "checkouts per outcome": "orders_saga_settled_total",
    "saga step latency": "orders_saga_step_seconds_bucket",
    "saga step failures": "orders_saga_steps_total",
    "provider failures": "orders_provider_calls_total",
    "breaker state (kit)": "dependency_breaker_state",
    "breaker state (providers)": "circuit_breaker_state",
    "stream lag": "stream_consumer_lag",
    "stream pending": "stream_consumer_pending",
    "dead letters": "stream_dead_letters_total",
    "websocket connections": "ws_open_sockets",
    "cache hit ratio": "catalog_search_cache_total",
}

_DECLARATION = re.compile(r'\b(Counter|Gauge|Histogram|Summary)\(\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"')
_PROMQL_WORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or"}
    | {"unless", "offset", "inf", "nan"}
)


@cache
def exposed_metrics() -> frozenset[str]:
    names: set[str] = set()
    sources = [*REPO_ROOT.glob("libs/*/src/**/*.py"), *REPO_ROOT.glob("services/*/src/**/*.py")]
    for path in sources:
        for kind, name in _DECLARATION.findall(path.read_text()):
            if kind == "Counter":
                names.add(name if name.endswith("_total") else f"{name}_total")
            elif kind in ("Histogram", "Summary"):
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            else:
                names.add(name)
    return frozenset(names)


def metrics_in(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, labels and keywords left out)."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    bare = re.sub(r"\{[^}]*\}", " ", bare)
    bare = re.sub(r"\[[^\]]*\]", " ", bare)
    bare = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", bare)
    names = re.findall(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", bare)
    return {n for n in names if n not in _PROMQL_WORDS}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def queries() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard()["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def test_the_expression_parser_finds_metrics_and_only_metrics() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, step) (rate(x_bucket{a="b(c)"}[$__rate_interval])))'
        " / sum(rate(y_total[5m])) or max by (g) (z)"
    )
    assert metrics_in(expr) == {"x_bucket", "y_total", "z"}


def test_the_dashboard_is_valid_json_with_a_templated_datasource() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert target["expr"].count("(") == target["expr"].count(")"), panel["title"]


@pytest.mark.parametrize(("title", "expr"), queries(), ids=[t for t, _ in queries()])
def test_every_metric_the_dashboard_queries_is_exposed_by_a_service(title: str, expr: str) -> None:
    used = metrics_in(expr)
    assert used, f"{title}: no metric found in {expr!r}"
    unknown = used - exposed_metrics()
    assert not unknown, f"{title}: no service exposes {sorted(unknown)}"


@pytest.mark.parametrize(("question", "metric"), QUESTIONS.items(), ids=list(QUESTIONS))
def test_each_operator_question_has_a_panel_and_a_documented_answer(
    question: str, metric: str
) -> None:
    assert metric in exposed_metrics()
    assert any(metric in metrics_in(expr) for _, expr in queries()), f"no panel for {question}"
    family = re.sub(r"_(total|bucket)$", "", metric)
    assert f"`{family}" in OPERATIONS_DOC.read_text(), f"docs/operations.md: {question}"


def test_compose_scrape_config_scrapes_every_service() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    (dns,) = job["dns_sd_configs"]
    assert sorted(dns["names"]) == sorted(s.name for s in SERVICES)
    assert dns["port"] == 8000


def test_kubernetes_scrape_config_follows_the_pod_annotations() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.kubernetes.yml").read_text())
    (job,) = config["scrape_configs"]
    (sd,) = job["kubernetes_sd_configs"]
    assert sd["role"] == "pod"
    relabels = {tuple(r["source_labels"]): r for r in job["relabel_configs"]}
    keep = relabels[("__meta_kubernetes_pod_annotation_prometheus_io_scrape",)]
    assert keep["action"] == "keep"
    # The adapter maps samples to pods by these labels (adapter-rules.yaml).
    assert relabels[("__meta_kubernetes_pod_name",)]["target_label"] == "pod"
    assert relabels[("__meta_kubernetes_namespace",)]["target_label"] == "namespace"
    for service in SERVICES:
        manifest = REPO_ROOT / "deploy" / "kubernetes" / "base" / f"{service.name}.yaml"
        (deployment,) = [
            d for d in yaml.safe_load_all(manifest.read_text()) if d and d["kind"] == "Deployment"
        ]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", service.name
        assert annotations["prometheus.io/path"] == "/metrics", service.name


def test_the_adapter_rule_serves_the_ws_gateway_socket_gauge() -> None:
    rules = yaml.safe_load((PROMETHEUS / "adapter-rules.yaml").read_text())["rules"]
    (rule,) = rules
    assert rule["seriesQuery"].startswith("ws_open_sockets{")
    assert rule["name"]["as"] == "ws_open_sockets"
    assert "ws_open_sockets" in exposed_metrics()
