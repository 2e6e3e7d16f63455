"""Reading the server's own state (the model list, a model's card, Ollama's tags and ps, the OIP
repository and model metadata, the key's own usage) needs a working key but spends none of its
limits and writes no usage row: a client that lists models before each request, or the web
console, must not use up the allowance it exists to spend."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from hearth.app import build_app
from tests.helpers.apps import fake_settings, wait_ready
from tests.helpers.keys import ADMIN, admin_headers, bearer
from tests.helpers.ledger import rows

CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
READS = [
    ("GET", "/v1/models", None),
    ("GET", "/v1/models/fake-chat", None),
    ("GET", "/api/tags", None),
    ("GET", "/api/ps", None),
    ("POST", "/api/show", {"model": "fake-chat"}),
    ("POST", "/v2/repository/index", None),
    ("GET", "/v2/models/fake-embed", None),
    ("GET", "/v2/models/fake-embed/ready", None),
    ("GET", "/v1/usage", None),
]


def test_reads_spend_no_limit_and_write_no_row(tmp_path: Path) -> None:
    app = build_app(fake_settings(tmp_path, no_auth=False, admin_key=ADMIN))
    with TestClient(app) as client:
        wait_ready(client)
        made = client.post("/admin/keys", json={"name": "tight", "rpm": 2}, headers=admin_headers())
        headers = bearer(made.json()["secret"])
        for _ in range(3):
            for method, path, body in READS:
                reply = client.request(method, path, json=body, headers=headers)
                assert reply.status_code == 200, (path, reply.text)
        assert client.post("/v1/chat/completions", json=CHAT, headers=headers).status_code == 200
        assert client.post("/v1/chat/completions", json=CHAT, headers=headers).status_code == 200
        limited = client.post("/v1/chat/completions", json=CHAT, headers=headers)
        assert limited.status_code == 429  # the two chats spent the allowance, the reads did not
        assert client.get("/v1/models", headers=headers).status_code == 200  # still readable
        recorded = [r["route"] for r in rows(client)]
        assert recorded.count("POST /v1/chat/completions") == 3
        assert not [r for r in recorded if not r.startswith("POST /v1/chat")], recorded


def test_reads_still_need_a_working_key(tmp_path: Path) -> None:
    app = build_app(fake_settings(tmp_path, no_auth=False, admin_key=ADMIN))
    with TestClient(app) as client:
        wait_ready(client)
        for method, path, body in READS:
            assert client.request(method, path, json=body).status_code == 401, path
            wrong = client.request(method, path, json=body, headers=bearer("hk-not-a-key"))
            assert wrong.status_code == 401, path
