"""Every answer of the fake-engine apps checked against its family's description, as the suite
runs: an ASGI middleware that reads each finished response and validates its body, or each of
its stream events, with tests/helpers/specs.py. An answer that breaks its spec fails the test
that asked for it. Responses cut short (a client that went away) are not checked."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import ollama
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.helpers import specs

Check = Callable[[Any], None]
_MODEL = r"[^/]+(?:/[^/]+)*"


def _openai(schema: str) -> Check:
    return lambda body: specs.openai(body, schema)


def _embeddings(body: Any) -> None:
    # The description types every vector as an array; base64 ones are strings (OpenAI's own too).
    if all(isinstance(item.get("embedding"), list) for item in body.get("data", [])):
        specs.openai(body, "CreateEmbeddingResponse")


def _ollama(kind: type[Any]) -> Check:
    return lambda body: specs.ollama_body(body, kind)


def _oip(schema: str) -> Check:
    return lambda body: specs.oip(body, schema)


def _ollama_error(body: Any) -> None:
    assert isinstance(body, dict) and isinstance(body.get("error"), str), body


def _openai_stream_error(check: Check) -> Check:
    return lambda event: specs.openai(event, "ErrorResponse") if "error" in event else check(event)


# (method, path pattern, check of a 2xx JSON body or NDJSON line, check of an SSE event, check of an error)
ROUTES: list[tuple[str, re.Pattern[str], Check | None, Check | None, Check]] = [
    ("POST", re.compile(r"/v1/chat/completions"), _openai("CreateChatCompletionResponse"),
     _openai_stream_error(_openai("CreateChatCompletionStreamResponse")), _openai("ErrorResponse")),
    ("POST", re.compile(r"/v1/completions"), _openai("CreateCompletionResponse"),
     _openai_stream_error(specs.openai_completion_chunk), _openai("ErrorResponse")),
    ("POST", re.compile(r"/v1/embeddings"), _embeddings, None, _openai("ErrorResponse")),
    ("GET", re.compile(r"/v1/models"), _openai("ListModelsResponse"), None, _openai("ErrorResponse")),
    ("GET", re.compile(rf"/v1/models/{_MODEL}"), _openai("Model"), None, _openai("ErrorResponse")),
    ("POST", re.compile(r"/v1/responses"), _openai("Response"), specs.openai_response_event, _openai("ErrorResponse")),
    ("GET", re.compile(r"/v1/responses/[^/]+"), _openai("Response"), specs.openai_response_event, _openai("ErrorResponse")),
    ("GET", re.compile(r"/v1/responses/[^/]+/input_items"), _openai("ResponseItemList"), None, _openai("ErrorResponse")),
    ("POST", re.compile(r"/v1/messages"), specs.anthropic_message, specs.anthropic_event, specs.anthropic_error),
    ("POST", re.compile(r"/v1/messages/count_tokens"), specs.anthropic_token_count, None, specs.anthropic_error),
    ("POST", re.compile(r"/api/chat"), _ollama(ollama.ChatResponse), None, _ollama_error),
    ("POST", re.compile(r"/api/generate"), _ollama(ollama.GenerateResponse), None, _ollama_error),
    ("POST", re.compile(r"/api/embed"), _ollama(ollama.EmbedResponse), None, _ollama_error),
    ("GET", re.compile(r"/api/tags"), _ollama(ollama.ListResponse), None, _ollama_error),
    ("GET", re.compile(r"/api/ps"), _ollama(ollama.ProcessResponse), None, _ollama_error),
    ("POST", re.compile(r"/api/show"), _ollama(ollama.ShowResponse), None, _ollama_error),
    ("GET", re.compile(r"/v2"), _oip("metadata_server_response"), None, _oip("metadata_server_error_response")),
    ("GET", re.compile(rf"/v2/models/(?!.*/(?:ready|infer)$){_MODEL}"), _oip("metadata_model_response"), None, _oip("metadata_model_error_response")),
    ("POST", re.compile(rf"/v2/models/{_MODEL}/infer"), _oip("inference_response"), None, _oip("inference_error_response")),
]  # fmt: skip


def check_answer(method: str, path: str, status: int, content_type: str, body: bytes) -> None:
    route = next((r for r in ROUTES if r[0] == method and r[1].fullmatch(path)), None)
    if route is None or status in {204, 304} or not body:
        return
    _, _, whole, event, error = route
    if status >= 400:
        if content_type.startswith("application/json"):
            error(json.loads(body))
        return
    if content_type.startswith("text/event-stream"):
        for line in body.decode().splitlines():
            if line.startswith("data: ") and line != "data: [DONE]" and event is not None:
                event(json.loads(line[len("data: ") :]))
    elif content_type.startswith(("application/x-ndjson", "application/json")) and whole is not None:
        for line in body.decode().splitlines() if "ndjson" in content_type else [body.decode()]:
            if line.strip():
                whole(json.loads(line))


class SpecCheck:
    """ASGI middleware: ``app.add_middleware(SpecCheck)``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen: dict[str, Any] = {"status": 0, "type": "", "body": bytearray(), "done": False}

        async def tee(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                headers = dict(message.get("headers", []))
                seen["type"] = headers.get(b"content-type", b"").decode()
                seen["binary"] = b"inference-header-content-length" in headers
                seen["encoded"] = b"content-encoding" in headers
            elif message["type"] == "http.response.body":
                seen["body"] += message.get("body", b"")
                seen["done"] = not message.get("more_body", False)
            await send(message)

        await self.app(scope, receive, tee)
        if seen["done"] and not seen.get("binary") and not seen.get("encoded"):
            check_answer(scope["method"], scope["path"], seen["status"], seen["type"], bytes(seen["body"]))
