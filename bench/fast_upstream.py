"""An OpenAI-compatible server that answers at once, for measuring what a gateway adds.

Chat completions come back immediately (a fixed reply of ``--tokens`` words, streamed as one
chunk per word when asked), with usage; ``/v1/models`` lists ``--model``. It is a bare ASGI app
on uvicorn, so the upstream is far cheaper than any gateway put in front of it.

    .venv/bin/python -m bench.fast_upstream --port 9000 [--model fast] [--tokens 16]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def make_app(model: str, tokens: int) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    words = [f"w{i} " for i in range(tokens)]
    models = json.dumps({"object": "list", "data": [{"id": model, "object": "model", "owned_by": "bench"}]})

    async def respond(
        send: Send, status: int, body: bytes, content_type: bytes = b"application/json"
    ) -> None:
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]}
        )
        await send({"type": "http.response.body", "body": body})

    def usage(prompt: int) -> dict[str, int]:
        return {"prompt_tokens": prompt, "completion_tokens": tokens, "total_tokens": prompt + tokens}

    async def chat(send: Send, request: dict[str, Any]) -> None:
        prompt = sum(len(str(m.get("content", "")).split()) for m in request.get("messages", []))
        head = {"id": "chatcmpl-bench", "created": int(time.time()), "model": model}
        if not request.get("stream"):
            message = {"role": "assistant", "content": "".join(words)}
            body = {**head, "object": "chat.completion", "usage": usage(prompt),
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}  # fmt: skip
            await respond(send, 200, json.dumps(body).encode())
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})  # fmt: skip

        async def event(choices: list[dict[str, Any]], **extra: Any) -> None:
            chunk = {**head, "object": "chat.completion.chunk", "choices": choices, **extra}
            await send({"type": "http.response.body", "body": f"data: {json.dumps(chunk)}\n\n".encode(),
                        "more_body": True})  # fmt: skip

        await event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        for word in words:
            await event([{"index": 0, "delta": {"content": word}, "finish_reason": None}])
        await event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        if (request.get("stream_options") or {}).get("include_usage"):
            await event([], usage=usage(prompt))
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if method == "GET" and path == "/v1/models":
            await respond(send, 200, models.encode())
            return
        if method == "POST" and path == "/v1/chat/completions":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            await chat(send, json.loads(body))
            return
        error = {"error": {"message": f"{method} {path} is not served here", "type": "not_found_error"}}
        await respond(send, 404, json.dumps(error).encode())

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="fast")
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args()
    uvicorn.run(make_app(args.model, args.tokens), host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False)  # fmt: skip


if __name__ == "__main__":
    main()
