"""Metrics, JSON logs and the shipped dashboard, against a live ``hearth serve`` (fake engines).

The server runs with ``HEARTH_LOG_FORMAT=json``, a shadow route and a key with a tiny request
limit, and gets traffic that touches every metric: chats (streamed and not), a shadow copy,
refusals, an unknown model and an odd HTTP method. Then:
- every log line is one JSON object, access lines carry the response's ``x-request-id``, and no
  secret (key, admin key, bearer token) appears anywhere in the log;
- ``/metrics`` exports each family the dashboard needs, with bounded labels only;
- every PromQL expression of deploy/grafana/hearth-dashboard.json names metrics (and labels)
  that this server really exports, so renaming a metric breaks this test.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from hearth.logs import JsonFormatter, Redactor
from tests.deploy.helpers import DEPLOY
from tests.helpers.keys import bearer
from tests.helpers.live import LiveServer

ADMIN = "admin-secret-for-observability-tests"
DASHBOARD = DEPLOY / "grafana" / "hearth-dashboard.json"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
CONFIG = """
models:
  - id: fake-chat
    kind: chat
    backend: fake
    source: "-"
  - id: fake-chat-2
    kind: chat
    backend: fake
    source: "-"
routes:
  - alias: chat
    strategy: shadow
    variants: [{model: fake-chat}]
    shadow: fake-chat-2
"""
UNKNOWN_MODEL = f"no-such-model-{uuid.uuid4().hex}"


@dataclass
class Traffic:
    server: LiveServer
    secrets: list[str]
    request_ids: dict[str, int] = field(default_factory=dict)  # x-request-id -> status


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traffic]:
    root = tmp_path_factory.mktemp("observability")
    config = root / "models.yaml"
    config.write_text(CONFIG)
    env = {"HEARTH_ADMIN_KEY": ADMIN, "HEARTH_LOG_FORMAT": "json", "HEARTH_CONFIG": str(config)}
    with LiveServer(root / "data", env=env) as live:
        key = live.create_key(ADMIN, "observer")
        tiny = live.create_key(ADMIN, "tiny", rpm=2)
        seen = Traffic(live, [key, tiny, ADMIN])
        with httpx.Client(base_url=live.url, timeout=30) as client:

            def call(method: str, path: str, secret: str = key, **kwargs: Any) -> httpx.Response:
                reply = client.request(method, path, headers=bearer(secret), **kwargs)
                seen.request_ids[reply.headers.get("x-request-id", "")] = reply.status_code
                return reply

            chat = {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 8}
            assert call("POST", "/v1/chat/completions", json={"model": "chat", **chat}).status_code == 200
            streamed = call(
                "POST", "/v1/chat/completions", json={"model": "fake-chat", "stream": True, **chat}
            )
            assert streamed.status_code == 200 and "[DONE]" in streamed.text
            assert call("POST", "/v1/messages", json={"model": "fake-chat", **chat}).status_code == 200
            assert (
                call("POST", "/v1/chat/completions", json={"model": UNKNOWN_MODEL, **chat}).status_code == 404
            )
            assert call("PATCH", "/v1/chat/completions").status_code == 405
            assert call("PROPFIND", "/v1/chat/completions").status_code == 405
            statuses = [
                call("POST", "/v1/chat/completions", tiny, json={"model": "fake-chat", **chat}).status_code
                for _ in range(4)
            ]
            assert statuses.count(429) == 2, statuses
            assert call("GET", "/v1/models", "hk-wrong-secret-0123456789").status_code == 401
            # The shadow copy runs off the request path: wait until it is counted.
            deadline = time.monotonic() + 10
            while 'outcome="compared"' not in client.get("/metrics").text:
                assert time.monotonic() < deadline, "the shadow copy was never compared"
                time.sleep(0.05)
        yield seen


def exported(server: LiveServer) -> dict[str, set[str]]:
    """Every sample name on /metrics (with _bucket, _sum, _count, _total), and its label names."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


# --- logs -----------------------------------------------------------------------------------------


def log_entries(server: LiveServer) -> list[dict[str, Any]]:
    lines = [line for line in server.logs().splitlines() if line.strip()]
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON log line: {line!r}")
    return entries


def test_every_log_line_is_one_json_object(traffic: Traffic) -> None:
    entries = log_entries(traffic.server)
    assert len(entries) > len(traffic.request_ids)
    for entry in entries:
        assert {"timestamp", "level", "logger", "message"} <= set(entry), entry
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", entry["timestamp"])
    loggers = {e["logger"] for e in entries}
    assert "hearth.access" in loggers and "uvicorn.error" in loggers  # uvicorn's own lines too
    assert any(e["message"].startswith("ready on http://") for e in entries)


def test_access_lines_carry_the_response_request_id(traffic: Traffic) -> None:
    access = {e["request_id"]: e for e in log_entries(traffic.server) if e["logger"] == "hearth.access"}
    assert len(traffic.request_ids) >= 10
    for request_id, status in traffic.request_ids.items():
        assert request_id.startswith("req_"), request_id
        line = access[request_id]
        assert line["status"] == status
        assert line["method"] and line["path"].startswith("/v1/")
        assert isinstance(line["latency_ms"], float) and line["latency_ms"] >= 0


def test_no_secret_is_ever_logged(traffic: Traffic) -> None:
    text = traffic.server.logs()
    for secret in traffic.secrets:
        assert secret not in text
    assert "hk-" not in text and "Bearer" not in text and "authorization" not in text.lower()


def test_formatter_masks_secrets_a_library_might_log() -> None:
    formatter = JsonFormatter(Redactor(("configured-admin-secret",)))
    record = logging.LogRecord(
        "some.library",
        logging.WARNING,
        __file__,
        1,
        "headers %s, admin configured-admin-secret, key hk-abc_DEF-123",
        ({"Authorization": "Bearer anything-at-all", "x-api-key": "sk-ant-whatever"},),
        None,
    )
    entry = json.loads(formatter.format(record))
    assert "anything-at-all" not in entry["message"] and "sk-ant-whatever" not in entry["message"]
    assert "configured-admin-secret" not in entry["message"] and "hk-abc" not in entry["message"]
    assert entry["message"].count("[redacted]") == 4 and entry["level"] == "warning"


# --- metrics --------------------------------------------------------------------------------------


def test_metrics_cover_traffic_queues_limits_ledger_and_shadow(traffic: Traffic) -> None:
    names = exported(traffic.server)
    wanted = {
        "hearth_requests_total": {"family", "route", "model", "variant", "status"},
        "hearth_request_duration_seconds_bucket": {"family", "route", "model", "variant", "le"},
        "hearth_time_to_first_token_seconds_bucket": {"model", "variant", "le"},
        "hearth_tokens_total": {"model", "variant", "type"},
        "hearth_engine_waiting": {"model"},
        "hearth_engine_running": {"model"},
        "hearth_engine_batches_total": {"model"},
        "hearth_engine_batch_items_total": {"model"},
        "hearth_rate_limit_refusals_total": {"family", "reason"},
        "hearth_ledger_lag_seconds": set(),
        "hearth_ledger_pending_rows": set(),
        "hearth_shadow_agreement_bucket": {"route", "shadow", "le"},
        "hearth_shadow_exact_matches_total": {"route", "shadow"},
        "hearth_shadow_requests_total": {"route", "shadow", "outcome"},
        "hearth_shadow_queue_length": set(),
    }
    for name, labels in wanted.items():
        assert name in names, name
        assert names[name] == labels, (name, names[name])
    text = httpx.get(traffic.server.url + "/metrics").text
    assert 'hearth_rate_limit_refusals_total{family="openai",reason="rate_limit_exceeded"} 2.0' in text
    assert re.search(r'hearth_tokens_total\{model="chat",type="prompt",variant="fake-chat"\} [1-9]', text)
    assert 'hearth_shadow_requests_total{outcome="compared",route="chat",shadow="fake-chat-2"} 1.0' in text


def test_metric_labels_stay_bounded(traffic: Traffic) -> None:
    """Nothing a caller typed becomes a label value: an unknown model is ``-``, an odd method OTHER."""
    text = httpx.get(traffic.server.url + "/metrics").text
    assert UNKNOWN_MODEL not in text and "PROPFIND" not in text
    assert 'model="-",route="POST /v1/chat/completions",status="404",variant="-"' in text
    assert 'route="OTHER /v1/chat/completions"' in text
    for secret in traffic.secrets:
        assert secret not in text
    values = {
        value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        for name, value in sample.labels.items()
        if name in {"model", "variant", "shadow"}
    }
    assert values <= {"-", "chat", "fake-chat", "fake-chat-2"}, values


# --- the dashboard and the scrape config -------------------------------------------------------

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
PROMQL_WORDS |= {"and", "or", "unless", "inf", "nan"}


def promql_selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched) for every vector selector of a PromQL expression."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals can hold anything
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors: [5m], [$__rate_interval]
    text = re.sub(r"\$\w+", "", text)
    # Grouping clauses name labels, not metrics: `sum by (model) (...)` becomes `sum (...)`.
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    selectors = []
    for match in re.finditer(r"([A-Za-z_:][\w:]*)\s*(\{[^}]*\})?\s*(\()?", text):
        name, matchers, call = match.groups()
        if call or name in PROMQL_WORDS or re.fullmatch(r"\d.*", name):
            continue  # a function or a keyword
        labels = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers or ""))
        selectors.append((name, labels))
    return selectors


def grouping_labels(expr: str) -> set[str]:
    return {
        label.strip()
        for clause in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr)
        for label in clause.split(",")
        if label.strip()
    }


def dashboard_expressions() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    found = [(p["title"], t["expr"]) for p in board["panels"] for t in p["targets"]]
    for variable in board["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            inner = re.fullmatch(r"label_values\((\w+),\s*\w+\)", query["query"])
            assert inner, query
            found.append((f"${variable['name']}", inner.group(1)))
    return found


def test_promql_parser_reads_selectors_and_suffixes() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (model, le) (rate(a_seconds_bucket{job=~"$job", x!="}"}[5m])))'
        " / on (model) sum(b_total) or vector(0)"
    )
    assert promql_selectors(expr) == [("a_seconds_bucket", {"job", "x"}), ("b_total", set())]
    assert grouping_labels(expr) == {"model", "le"}


def test_dashboard_queries_use_metrics_the_server_exports(traffic: Traffic) -> None:
    names = exported(traffic.server)
    board = json.loads(DASHBOARD.read_text())
    titles = " ".join(p["title"].lower() for p in board["panels"])
    for topic in ("requests", "errors", "latency", "first token", "tokens", "queue", "refusals", "ledger"):
        assert topic in titles, topic
    assert "shadow agreement" in titles
    used = set()
    for title, expr in dashboard_expressions():
        selectors = promql_selectors(expr)
        assert selectors, (title, expr)
        metric_labels: set[str] = set()
        for name, labels in selectors:
            assert name in names, f"panel {title!r} queries {name}, which /metrics does not export"
            # job and instance are added by Prometheus when it scrapes.
            assert labels - {"job", "instance"} <= names[name], (title, name, labels)
            metric_labels |= names[name]
            used.add(name)
        assert grouping_labels(expr) - {"job", "instance"} <= metric_labels, (title, expr)
    assert len(used) >= 12


def test_prometheus_scrape_config() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["hearth"]["metrics_path"] == "/metrics"
    assert jobs["hearth"]["static_configs"][0]["targets"] == ["127.0.0.1:8000"]
    kube = jobs["hearth-kubernetes"]
    assert kube["kubernetes_sd_configs"] == [{"role": "pod"}]
    keep = [r for r in kube["relabel_configs"] if r.get("action") == "keep"]
    assert {r["regex"] for r in keep} == {"hearth", "http"}  # the Deployment's label and port name
    assert {r["target_label"]: r["replacement"] for r in kube["relabel_configs"] if "replacement" in r} == {
        "job": "hearth"
    }
    # The dashboard's $job variable selects what these jobs are called.
    assert "label_values(hearth_models_ready, job)" in DASHBOARD.read_text()
    deployment = yaml.safe_load((DEPLOY / "k8s" / "base" / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "hearth"
    assert pod["spec"]["containers"][0]["ports"][0]["name"] == "http"


def test_guide_names_the_shipped_files() -> None:
    guide = (Path(DEPLOY).parent / "docs" / "deploy" / "observability.md").read_text()
    for needle in (
        "deploy/grafana/hearth-dashboard.json",
        "deploy/prometheus/prometheus.yml",
        "HEARTH_LOG_FORMAT",
    ):
        assert needle in guide
