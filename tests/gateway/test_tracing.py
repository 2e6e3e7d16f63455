"""Traces: a request's server span continues the caller's traceparent, with auth, limits,
queue, prefill, decode and ledger spans under it; checked with the SDK's in-memory exporter
and, end to end, with a live server sending OTLP/HTTP to a receiver this test runs."""

from __future__ import annotations

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hearth import tracing
from tests.helpers.fake_server import MODELS
from tests.helpers.keys import MakeKey, bearer
from tests.helpers.live import LiveServer

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT}-01"
CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
PHASES = {"auth", "limits", "queue", "prefill", "decode", "ledger"}


def test_spans_of_one_request_continue_the_callers_trace(gw: TestClient, make_key: MakeKey) -> None:
    exporter = InMemorySpanExporter()
    tracing.configure(exporter)
    secret = make_key("traced")
    exporter.clear()
    reply = gw.post("/v1/chat/completions", json={**CHAT, "stream": True},
                    headers={**bearer(secret), "traceparent": TRACEPARENT})  # fmt: skip
    assert reply.status_code == 200
    spans = [s for s in exporter.get_finished_spans() if format(s.context.trace_id, "032x") == TRACE_ID]
    names = {s.name for s in spans}
    assert "POST /v1/chat/completions" in names and names >= PHASES, names
    server = next(s for s in spans if s.name == "POST /v1/chat/completions")
    assert server.parent is not None and format(server.parent.span_id, "016x") == PARENT
    assert server.attributes is not None and server.attributes["http.response.status_code"] == 200
    for child in (s for s in spans if s.name in PHASES):
        assert child.parent is not None and child.parent.span_id == server.context.span_id, child.name
    queue, prefill, decode = (next(s for s in spans if s.name == n) for n in ("queue", "prefill", "decode"))
    assert queue.end_time <= prefill.start_time + 1 and prefill.end_time <= decode.start_time + 1
    assert not any(secret in json.dumps(dict(s.attributes or {})) for s in spans), "no secret in a span"


class _Receiver(BaseHTTPRequestHandler):
    spans: list[tuple[str, str]] = []  # (trace id, name)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                _Receiver.spans.extend((s.trace_id.hex(), s.name) for s in scope.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return


def test_a_live_server_sends_its_spans_to_an_otlp_receiver(tmp_path: Path) -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    env = {
        "HEARTH_MODELS": MODELS,
        "HEARTH_LOG_FORMAT": "json",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_port}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    try:
        with LiveServer(tmp_path / "data", "--no-auth", env=env) as server:
            reply = httpx.post(
                server.url + "/v1/chat/completions", json=CHAT, headers={"traceparent": TRACEPARENT}
            )
            assert reply.status_code == 200
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not {"queue", "decode", "ledger"} <= {
                name for trace_id, name in _Receiver.spans if trace_id == TRACE_ID
            }:
                time.sleep(0.1)
        names = {name for trace_id, name in _Receiver.spans if trace_id == TRACE_ID}
        assert "POST /v1/chat/completions" in names and {"queue", "prefill", "decode", "ledger"} <= names, (
            names
        )
        access = [
            json.loads(line)
            for line in server.logs().splitlines()
            if '"path": "/v1/chat/completions"' in line
        ]
        assert access and access[0]["trace_id"] == TRACE_ID
    finally:
        receiver.shutdown()
