"""What goes over the wire: SSE bodies, and OpenAI's error envelope."""

from __future__ import annotations


def sse_events(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


def assert_envelope(reply: object, status: int, code: str | None = None) -> dict[str, object]:
    assert reply.status_code == status, reply.text  # type: ignore[attr-defined]
    error = reply.json()["error"]  # type: ignore[attr-defined]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    return error  # type: ignore[no-any-return]
