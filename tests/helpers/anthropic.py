"""Helpers for the Anthropic family's tests: request bodies, SSE parsing, the error shape."""

from __future__ import annotations

import json
from typing import Any

import httpx

MESSAGE: dict[str, Any] = {
    "model": "fake-chat",
    "max_tokens": 5,
    "messages": [{"role": "user", "content": "hi"}],
}
ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}


def named_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """``(event name, data)`` for every SSE event; checks that each data's type is its name."""
    events = []
    for chunk in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.splitlines())
        data = json.loads(lines["data"])
        assert data["type"] == lines["event"], chunk
        events.append((lines["event"], data))
    return events


def assert_error(reply: httpx.Response, status: int, error_type: str) -> str:
    """Anthropic's error shape exactly, with ``status`` and ``error.type``; returns the message."""
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) == {"type", "error"} and body["type"] == "error", body
    assert set(body["error"]) == {"type", "message"}, body
    assert body["error"]["type"] == error_type, body
    assert body["error"]["message"]
    assert reply.headers["request-id"] == reply.headers["x-request-id"]
    return str(body["error"]["message"])
