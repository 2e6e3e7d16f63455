"""A small upstream server for tests, speaking OpenAI's API and Anthropic's Messages API, that
misbehaves on demand: it refuses, hangs before its first byte, answers 500 or 429, cuts a stream
half-way, stalls in the middle, sends malformed JSON or an error chunk, or leaves usage out.

It runs in a thread (uvicorn) on a loopback port, records every request it gets, and answers
with fixed text and fixed token counts, so a test can check what Hearth sent and recorded.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

Mode = Literal["ok", "hang", "500", "429", "cut", "stall", "malformed", "error_chunk", "no_usage"]
WORDS = ["Hello", " from", " the", " upstream"]
PROMPT_TOKENS, COMPLETION_TOKENS, CACHED_TOKENS = 11, len(WORDS), 3
DIMENSIONS = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeUpstream:
    def __init__(self, models: tuple[str, ...] = ("up-chat", "up-embed"), context: int = 4096) -> None:
        self.mode: Mode = "ok"
        self.models = models
        self.context = context
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.port = free_port()
        self.metrics_text: str | None = None  # a /metrics page (vLLM's gauges), when set
        self.hang_s = 3.0  # longer than the tests' timeouts, short enough to shut down soon
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [body for seen, body, _ in self.requests if seen == path]

    def start(self) -> FakeUpstream:
        routes = [
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/completions", self._completions, methods=["POST"]),
            Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            Route("/tokenize", self._tokenize, methods=["POST"]),
            Route("/v1/messages", self._messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", self._count, methods=["POST"]),
            Route("/metrics", self._metrics, methods=["GET"]),
        ]
        config = uvicorn.Config(
            Starlette(routes=routes), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake upstream did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- routes ----------------------------------------------------------------------------------

    async def _record(self, request: Request) -> dict[str, Any]:
        body = json.loads(await request.body() or b"{}")
        self.requests.append((request.url.path, body, dict(request.headers)))
        return body  # type: ignore[no-any-return]

    async def _refuse(self) -> Response | None:
        """The failures that come before any byte of an answer."""
        if self.mode == "hang":
            await asyncio.sleep(self.hang_s)
        if self.mode == "500":
            return JSONResponse({"error": {"message": "the GPU fell over", "type": "server_error"}}, 500)
        if self.mode == "429":
            return JSONResponse({"error": {"message": "slow down"}}, 429, headers={"retry-after": "3"})
        return None

    async def _models(self, request: Request) -> Response:
        cards = [{"id": m, "object": "model", "max_model_len": self.context} for m in self.models]
        return JSONResponse({"object": "list", "data": cards})

    async def _chat(self, request: Request) -> Response:
        body = await self._record(request)
        if (refused := await self._refuse()) is not None:
            return refused
        if body.get("model") not in self.models:
            return JSONResponse(
                {"error": {"message": f"The model `{body.get('model')}` does not exist."}}, 404
            )
        if body.get("max_tokens", 0) > self.context:
            message = f"This model's maximum context length is {self.context} tokens."
            return JSONResponse({"object": "error", "message": message, "code": 400}, 400)
        calls = bool(body.get("tools")) and body.get("tool_choice") not in (None, "auto", "none")
        if not body.get("stream"):
            return await _whole(self._chat_chunks(body, calls), "chat.completion")
        return StreamingResponse(self._chat_chunks(body, calls), media_type="text/event-stream")

    async def _chat_chunks(self, body: dict[str, Any], calls: bool) -> AsyncIterator[bytes]:
        def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> bytes:
            choice = {"index": index, "delta": delta, "finish_reason": finish}
            return _sse(
                {"id": "c1", "object": "chat.completion.chunk", "model": body["model"], "choices": [choice]}
            )

        for index in range(int(body.get("n") or 1)):
            yield chunk({"role": "assistant", "content": ""}, index=index)
            if calls:
                name = body["tools"][0]["function"]["name"]
                call = {
                    "index": 0,
                    "id": "call_up_1",
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }
                yield chunk({"tool_calls": [call]}, index=index)
                for piece in ('{"city": ', '"Paris"}'):
                    yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}, index=index)
                yield chunk({}, "tool_calls", index)
                continue
            for i, word in enumerate(WORDS):
                if self.mode == "cut" and i == 2:
                    raise ConnectionResetError("cut on purpose")
                if self.mode == "stall" and i == 2:
                    await asyncio.sleep(self.hang_s)
                if self.mode == "malformed" and i == 2:
                    yield b"data: {not json\n\n"
                    return
                if self.mode == "error_chunk" and i == 2:
                    yield _sse({"error": {"message": "out of KV cache", "type": "server_error"}})
                    return
                yield chunk({"content": word}, index=index)
            yield chunk({}, "stop", index)
        if self.mode != "no_usage":
            usage = {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": COMPLETION_TOKENS * int(body.get("n") or 1),
                "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
                "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS},
            }
            yield _sse({"id": "c1", "object": "chat.completion.chunk", "choices": [], "usage": usage})
        yield b"data: [DONE]\n\n"

    async def _completions(self, request: Request) -> Response:
        body = await self._record(request)
        if (refused := await self._refuse()) is not None:
            return refused

        async def chunks() -> AsyncIterator[bytes]:
            for word in WORDS:
                yield _sse(
                    {
                        "object": "text_completion",
                        "choices": [{"index": 0, "text": word, "finish_reason": None}],
                    }
                )
            yield _sse(
                {
                    "object": "text_completion",
                    "choices": [{"index": 0, "text": "", "finish_reason": "length"}],
                }
            )
            usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS}
            yield _sse({"object": "text_completion", "choices": [], "usage": usage})
            yield b"data: [DONE]\n\n"

        if not body.get("stream"):
            return await _whole(chunks(), "text_completion")
        return StreamingResponse(chunks(), media_type="text/event-stream")

    async def _embeddings(self, request: Request) -> Response:
        body = await self._record(request)
        if (refused := await self._refuse()) is not None:
            return refused
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(t)), 1.0, 0.0, float(i)]}
            for i, t in enumerate(texts)
        ]
        usage = {"prompt_tokens": 5 * len(texts), "total_tokens": 5 * len(texts)}
        return JSONResponse({"object": "list", "data": data, "model": body["model"], "usage": usage})

    async def _tokenize(self, request: Request) -> Response:
        body = await self._record(request)
        if "messages" not in body:
            return JSONResponse({"error": "messages needed"}, 400)
        return JSONResponse({"count": 17, "max_model_len": self.context, "tokens": list(range(17))})

    async def _messages(self, request: Request) -> Response:
        body = await self._record(request)
        if (refused := await self._refuse()) is not None:
            return refused
        if "max_tokens" not in body:
            return JSONResponse(
                {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
                },
                400,
            )
        calls = bool(body.get("tools")) and (body.get("tool_choice") or {}).get("type") in ("any", "tool")
        if not body.get("stream"):
            return await _whole_message(self._anthropic_events(body, calls))
        return StreamingResponse(self._anthropic_events(body, calls), media_type="text/event-stream")

    async def _anthropic_events(self, body: dict[str, Any], calls: bool) -> AsyncIterator[bytes]:
        def event(payload: dict[str, Any]) -> bytes:
            return f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n".encode()

        usage = {
            "input_tokens": PROMPT_TOKENS - CACHED_TOKENS,
            "cache_read_input_tokens": CACHED_TOKENS,
            "output_tokens": 1,
        }
        message = {
            "id": "msg_up",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [],
            "usage": usage,
        }
        yield event({"type": "message_start", "message": message})
        if calls:
            name = body["tools"][0]["name"]
            block = {"type": "tool_use", "id": "toolu_up_1", "name": name, "input": {}}
            yield event({"type": "content_block_start", "index": 0, "content_block": block})
            for piece in ('{"city": ', '"Paris"}'):
                yield event(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    }
                )
            yield event({"type": "content_block_stop", "index": 0})
            stop = "tool_use"
        else:
            yield event(
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
            )
            for i, word in enumerate(WORDS):
                if self.mode == "cut" and i == 2:
                    raise ConnectionResetError("cut on purpose")
                yield event(
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}}
                )
            yield event({"type": "content_block_stop", "index": 0})
            stop = "end_turn"
        yield event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": COMPLETION_TOKENS},
            }
        )
        yield event({"type": "message_stop"})

    async def _metrics(self, request: Request) -> Response:
        if self.metrics_text is None:
            return Response("not found", 404)
        return Response(self.metrics_text, media_type="text/plain")

    async def _count(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse({"input_tokens": 9})


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _payloads(raw: bytes) -> list[Any]:
    return [json.loads(line[5:]) for line in raw.split(b"\n") if line.startswith(b"data: {")]


async def _whole(chunks: AsyncIterator[bytes], kind: str) -> Response:
    """What a server answers unstreamed: the same chunks, assembled (a cut is a reset connection,
    a malformed chunk a malformed body, an error chunk the error object)."""
    raw = b"".join([chunk async for chunk in chunks])
    if b"data: {not json" in raw:
        return Response(b"{not json", media_type="application/json")
    choices: dict[int, dict[str, Any]] = {}
    answer: dict[str, Any] = {"id": "c1", "object": kind}
    for payload in _payloads(raw):
        if "error" in payload:
            return JSONResponse(payload)
        answer.update({k: payload[k] for k in ("model", "usage") if k in payload})
        for part in payload.get("choices") or []:
            choice = choices.setdefault(part["index"], {"index": part["index"], "text": "", "calls": {}})
            delta = part.get("delta") or {}
            choice["text"] += delta.get("content") or part.get("text") or ""
            for call in delta.get("tool_calls") or []:
                known = choice["calls"].setdefault(call["index"], {"id": call.get("id"), "type": "function",
                                                                   "function": {"name": None, "arguments": ""}})  # fmt: skip
                known["function"]["name"] = call.get("function", {}).get("name") or known["function"]["name"]
                known["function"]["arguments"] += call.get("function", {}).get("arguments") or ""
            if part.get("finish_reason"):
                choice["finish_reason"] = part["finish_reason"]
    answer["choices"] = []
    for choice in choices.values():
        done = {"index": choice["index"], "finish_reason": choice.get("finish_reason")}
        if kind == "text_completion":
            done["text"] = choice["text"]
        else:
            calls = list(choice["calls"].values()) or None
            done["message"] = {"role": "assistant", "content": choice["text"] or None, "tool_calls": calls}
        answer["choices"].append(done)
    return JSONResponse(answer)


async def _whole_message(events: AsyncIterator[bytes]) -> Response:
    """An unstreamed Message, assembled from the same events."""
    message: dict[str, Any] = {}
    blocks: list[dict[str, Any]] = []
    for payload in _payloads(b"".join([event async for event in events])):
        kind = payload["type"]
        if kind == "message_start":
            message = dict(payload["message"])
        elif kind == "content_block_start":
            blocks.append(dict(payload["content_block"], partial=""))
        elif kind == "content_block_delta":
            delta = payload["delta"]
            if delta["type"] == "text_delta":
                blocks[-1]["text"] += delta["text"]
            else:
                blocks[-1]["partial"] += delta["partial_json"]
        elif kind == "message_delta":
            message.update(payload["delta"])
            message["usage"] = {**message["usage"], **payload["usage"]}
    for block in blocks:
        partial = block.pop("partial")
        if block["type"] == "tool_use":
            block["input"] = json.loads(partial or "{}")
    message["content"] = blocks
    return JSONResponse(message)
