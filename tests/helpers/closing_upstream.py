"""An OpenAI-style upstream that closes kept-alive connections as they are reused.

Real servers close idle connections after a few seconds (uvicorn and llama-server after 5), and
a client may send on one at that very moment; the server then closes it without an answer. This
server does so every time, so the race is certain: it answers the first request on each
connection (keeping it alive), and closes the connection when a second request arrives on it.
With ``always`` it closes every connection without answering.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

from tests.helpers.upstream import COMPLETION_TOKENS, PROMPT_TOKENS, WORDS

ANSWERS: dict[str, dict[str, Any]] = {
    "/v1/models": {"object": "list", "data": [{"id": "up-chat", "object": "model", "max_model_len": 4096}]},
    "/v1/chat/completions": {
        "id": "c1",
        "object": "chat.completion",
        "model": "up-chat",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "".join(WORDS)}}],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS},
    },
}  # fmt: skip


class ClosingUpstream:
    def __init__(self, always: bool = False) -> None:
        self.always = always
        self.requests: list[str] = []  # the paths of every request that arrived, answered or not
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"

    def __enter__(self) -> ClosingUpstream:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        self._thread.join(5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            for answered in range(2):
                path = _read_request(reader)
                if path is None:
                    return
                self.requests.append(path)
                if answered or self.always:
                    return  # closed under the request, nothing answered
                body = json.dumps(ANSWERS.get(path.split("?")[0], {"error": {"message": "no"}})).encode()
                head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                conn.sendall(head.encode() + body)


def _read_request(reader: Any) -> str | None:
    """The path of the next request on a connection, its body read; None when it closed."""
    line = reader.readline()
    if not line:
        return None
    length = 0
    while (header := reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = header.decode().partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    reader.read(length)
    return str(line.split()[1].decode())
