"""The floor under any FastAPI gateway: a bare FastAPI route that forwards chat to an upstream.

No keys, limits, ledger, validation, metrics or translation: it parses the JSON body, sends it
on with aiohttp (Hearth's upstream client) and answers the upstream's JSON, or passes its stream
through. Served like Hearth (uvicorn, httptools, uvloop), so what it adds over calling the
upstream directly is what the stack costs before a gateway does anything.

    .venv/bin/python -m bench.proxy_floor --port 9001 --upstream http://127.0.0.1:9000
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse


def make_app(upstream: str) -> FastAPI:
    app = FastAPI()
    sessions: list[aiohttp.ClientSession] = []

    def session() -> aiohttp.ClientSession:
        if not sessions:
            sessions.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)))
        return sessions[0]

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.json()
        reply = await session().post(f"{upstream}/v1/chat/completions", json=body)
        if not body.get("stream"):
            answer = await reply.json()
            reply.release()
            return JSONResponse(answer, status_code=reply.status)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in reply.content.iter_any():
                    yield chunk
            finally:
                reply.release()

        return StreamingResponse(chunks(), media_type="text/event-stream")

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    uvicorn.run(
        make_app(args.upstream), host="127.0.0.1", port=args.port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
