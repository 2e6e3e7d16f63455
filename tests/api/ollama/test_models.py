"""The Ollama embeddings and model routes on fake engines, its error shape, keys and ledger rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from hearth.api.ollama.mapper import OLLAMA_SAMPLING, sampling
from hearth.api.ollama.models import human_number
from hearth.api.ollama.protocol import Options
from hearth.app import build_app
from hearth.engines.base import Embeddings
from hearth.engines.fake import FakeEmbeddingEngine
from hearth.inference.types import SamplingOptions
from tests.helpers.apps import fake_settings, wait_ready
from tests.helpers.keys import ADMIN, admin_headers, bearer
from tests.helpers.ledger import flush_ledger

CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "options": {"num_predict": 3}}
GENERATE = {"model": "fake-chat", "prompt": "go", "options": {"num_predict": 2}}


def test_embed_string_and_list(client: TestClient) -> None:
    one = client.post("/api/embed", json={"model": "fake-embed", "input": "a b"}).json()
    assert one["model"] == "fake-embed" and len(one["embeddings"]) == 1 and len(one["embeddings"][0]) == 8
    assert one["prompt_eval_count"] == 4 and one["load_duration"] == 0 and one["total_duration"] > 0
    many = client.post("/api/embed", json={"model": "fake-embed:latest", "input": ["a b", "c"]}).json()
    assert many["model"] == "fake-embed:latest" and many["prompt_eval_count"] == 7
    vectors = np.array(many["embeddings"])
    assert vectors.shape == (2, 8)
    assert np.allclose(vectors[0], one["embeddings"][0])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


def test_embed_truncates_by_default_as_ollama_does(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = client.app.state.registry.get("fake-embed", FakeEmbeddingEngine)  # type: ignore[attr-defined]
    asked: list[bool] = []
    original = engine.embed

    async def spy(texts: list[str], *, truncate: bool = False) -> Embeddings:
        asked.append(truncate)
        return await original(texts, truncate=truncate)

    monkeypatch.setattr(engine, "embed", spy)
    client.post("/api/embed", json={"model": "fake-embed", "input": "x"})
    client.post("/api/embed", json={"model": "fake-embed", "input": "x", "truncate": False})
    client.post("/api/embeddings", json={"model": "fake-embed", "prompt": "x"})
    assert asked == [True, False, True]


def test_empty_embed_input_loads_the_model(client: TestClient) -> None:
    assert client.post("/api/embed", json={"model": "fake-embed", "input": []}).json()["embeddings"] == []
    assert client.post("/api/embeddings", json={"model": "fake-embed"}).json() == {"embedding": []}
    missing = client.post("/api/embed", json={"model": "nope:latest", "input": ""})
    assert missing.status_code == 404
    assert missing.json()["error"].startswith("model 'nope:latest' not found; the models you may use: ")


def test_legacy_embeddings(client: TestClient) -> None:
    data = client.post("/api/embeddings", json={"model": "fake-embed", "prompt": "a b"}).json()
    assert set(data) == {"embedding"} and len(data["embedding"]) == 8
    new = client.post("/api/embed", json={"model": "fake-embed", "input": "a b"}).json()
    assert np.allclose(data["embedding"], new["embeddings"][0])


def test_embed_errors(client: TestClient) -> None:
    wrong = client.post("/api/embed", json={"model": "fake-chat", "input": "x"})
    assert wrong.status_code == 400 and "cannot serve this route" in wrong.json()["error"]
    dims = client.post("/api/embed", json={"model": "fake-embed", "input": "x", "dimensions": 4})
    assert dims.status_code == 400 and "8 dimensions" in dims.json()["error"]
    bad = client.post("/api/embed", json={"model": "fake-embed", "input": [1, 2]})
    assert bad.status_code == 400 and set(bad.json()) == {"error"}


def test_tags_lists_chat_and_embedding_models_with_tags(client: TestClient) -> None:
    models = client.get("/api/tags").json()["models"]
    assert [m["name"] for m in models] == ["fake-chat:latest", "fake-embed:latest"]  # no image classifier
    first = models[0]
    assert set(first) == {"name", "model", "modified_at", "size", "digest", "details"}
    assert first["model"] == first["name"] and len(first["digest"]) == 64
    assert set(first["details"]) == {
        "parent_model",
        "format",
        "family",
        "families",
        "parameter_size",
        "quantization_level",
    }
    assert client.head("/api/tags").status_code == 200


def test_show_details_model_info_and_capabilities(client: TestClient) -> None:
    chat = client.post("/api/show", json={"model": "fake-chat:latest"}).json()
    assert chat["capabilities"] == ["completion", "tools"]
    assert chat["model_info"]["general.architecture"] == "fake"
    assert chat["model_info"]["fake.context_length"] == 2048
    assert "temperature                    0.8" in chat["parameters"]
    assert "num_ctx                        2048" in chat["parameters"]
    assert chat["modelfile"].startswith("# Modelfile generated by Hearth\nFROM fake-chat\n")
    assert "template" not in chat  # not known for this model
    embed = client.post("/api/show", json={"name": "fake-embed"}).json()  # the older field name
    assert embed["capabilities"] == ["embedding"] and embed["parameters"] == ""
    assert client.post("/api/show", json={"model": "fc"}).status_code == 200  # aliases work too
    missing = client.post("/api/show", json={"model": "nope"})
    assert missing.status_code == 404 and missing.json()["error"].startswith("model 'nope' not found; ")
    vision = client.post("/api/show", json={"model": "fake-vision"})  # no Ollama route serves it
    assert vision.status_code == 404 and vision.json() == {"error": "model 'fake-vision' not found"}
    assert client.post("/api/show", json={}).json() == {"error": "model is required"}


def test_ps_and_version(client: TestClient) -> None:
    running = client.get("/api/ps").json()["models"]
    assert [m["name"] for m in running] == ["fake-chat:latest", "fake-embed:latest"]
    assert running[0]["size_vram"] == 0 and running[0]["context_length"] == 2048
    assert running[0]["expires_at"] > "2100"
    assert client.get("/api/version").json() == {"version": "0.1.0"}
    assert client.head("/api/version").status_code == 200
    assert client.head("/").status_code == 200  # the heartbeat Ollama's CLI sends


def test_human_number_matches_ollama() -> None:
    assert [human_number(n) for n in (268_098_176, 8_030_261_248, 7_000_000_000, 22_700_000, 4_000, 12)] == [
        "268.10M",
        "8.0B",
        "7B",
        "22.70M",
        "4K",
        "12",
    ]


def test_sampling_unit() -> None:
    # Unset stays unset here: the gateway layers the model's defaults over OLLAMA_SAMPLING.
    unset = sampling(None)
    assert (unset.temperature, unset.top_k, unset.top_p, unset.repeat_penalty, unset.max_tokens) == (
        None,
    ) * 5
    assert SamplingOptions(temperature=0.8, top_k=40, top_p=0.9, repeat_penalty=1.1) == OLLAMA_SAMPLING
    assert sampling(Options(num_predict=-1, seed=-1)).max_tokens is None
    assert sampling(Options(num_predict=-1, seed=-1)).seed is None
    assert sampling(Options(stop="END")).stop == ("END",)
    greedy = sampling(Options(temperature=0, top_k=0))
    assert greedy.temperature == 0 and greedy.top_k == 0


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "needle"),
    [
        ("POST", "/api/chat", b"{not json", 400, "could not parse"),
        ("POST", "/api/chat", b'{"messages": []}', 400, "model"),
        ("POST", "/api/generate", b'{"model": "nope", "prompt": "x"}', 404, "model 'nope' not found"),
        (
            "POST",
            "/api/chat",
            b'{"model": "fake-chat", "options": {"temperature": "hot"}}',
            400,
            "temperature",
        ),
        ("GET", "/api/nope", b"", 404, "no route"),
        ("GET", "/api/chat", b"", 405, "Method Not Allowed"),
    ],
)
def test_errors_are_ollama_shaped(
    client: TestClient, method: str, path: str, body: bytes, status: int, needle: str
) -> None:
    reply = client.request(method, path, content=body, headers={"content-type": "application/json"})
    assert reply.status_code == status
    data = reply.json()
    assert set(data) == {"error"} and isinstance(data["error"], str) and needle in data["error"]


def test_body_too_large_is_413(tmp_path: Path) -> None:
    with TestClient(build_app(fake_settings(tmp_path, max_body_bytes=2048))) as client:
        wait_ready(client)
        reply = client.post("/api/generate", json={"model": "fake-chat", "prompt": "x" * 5000})
    assert reply.status_code == 413
    assert set(reply.json()) == {"error"} and "too large" in reply.json()["error"]


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[TestClient]:
    """Keys on: an admin key to make keys with."""
    with TestClient(build_app(fake_settings(tmp_path, no_auth=False, admin_key=ADMIN))) as client:
        wait_ready(client)
        yield client


def make_key(gw: TestClient, name: str, **limits: Any) -> str:
    reply = gw.post("/admin/keys", json={"name": name, **limits}, headers=admin_headers())
    assert reply.status_code == 201, reply.text
    secret: str = reply.json()["secret"]
    return secret


@pytest.fixture
def keyed(gw: TestClient) -> tuple[TestClient, str]:
    return gw, make_key(gw, "ollama-user")


def test_keys_from_bearer_and_401(keyed: tuple[TestClient, str]) -> None:
    gw, secret = keyed
    assert gw.post("/api/chat", json=CHAT, headers=bearer(secret)).status_code == 200
    for headers in ({}, bearer("wrong")):
        reply = gw.post("/api/chat", json=CHAT, headers=headers)
        assert reply.status_code == 401 and set(reply.json()) == {"error"}
    assert gw.get("/api/tags").status_code == 401
    assert gw.get("/api/version").status_code == 200  # version answers without a key, as Ollama's


def test_version_polls_write_no_ledger_rows(gw: TestClient) -> None:
    for _ in range(3):
        assert gw.get("/api/version").json() == {"version": "0.1.0"}
        assert gw.head("/api/version").status_code == 200
    flush_ledger(gw)
    with gw.app.state.root.database.engine.connect() as conn:  # type: ignore[attr-defined]
        assert conn.execute(sa.text("SELECT count(*) FROM usage_records")).scalar() == 0


def test_quota_is_429_with_retry_after(gw: TestClient) -> None:
    secret = make_key(gw, "tiny", monthly_tokens=30)
    first = gw.post("/api/chat", json={**CHAT, "stream": False}, headers=bearer(secret))
    assert first.status_code == 200
    flush_ledger(gw)
    over = gw.post("/api/chat", json={**CHAT, "options": {"num_predict": 25}}, headers=bearer(secret))
    assert over.status_code == 429
    assert set(over.json()) == {"error"} and "monthly budget" in over.json()["error"]
    assert int(over.headers["retry-after"]) > 0


def test_usage_rows_say_family_ollama(keyed: tuple[TestClient, str]) -> None:
    gw, secret = keyed
    gw.post("/api/chat", json={**CHAT, "stream": False}, headers=bearer(secret))
    with gw.stream("POST", "/api/generate", json={**GENERATE, "stream": True}, headers=bearer(secret)) as r:
        r.read()
    gw.post("/api/embed", json={"model": "fake-embed", "input": "a b"}, headers=bearer(secret))
    gw.post("/api/chat", json={**CHAT, "model": "nope:latest"}, headers=bearer(secret))
    gw.post(
        "/v1/chat/completions", json={"model": "fake-chat", "messages": CHAT["messages"], "max_tokens": 2}
    )
    flush_ledger(gw)
    with gw.app.state.root.database.engine.connect() as conn:  # type: ignore[attr-defined]
        result = conn.execute(
            sa.text(
                "SELECT family, route, model, status_code, stream, completion_tokens FROM usage_records ORDER BY id"
            )
        )
        recorded: list[dict[str, Any]] = [dict(r._mapping) for r in result]
    chat, generate, embed, missing, openai = recorded
    assert [r["family"] for r in recorded] == ["ollama"] * 4 + ["openai"]
    assert (chat["route"], chat["model"], chat["completion_tokens"]) == ("POST /api/chat", "fake-chat", 3)
    assert generate["route"] == "POST /api/generate" and generate["stream"]
    assert embed["route"] == "POST /api/embed" and embed["model"] == "fake-embed"
    assert missing["status_code"] == 404 and missing["model"] == "nope"
    assert openai["status_code"] == 401


def test_openapi_documents_the_ollama_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert paths["/api/chat"]["post"]["security"] == [{"bearerKey": []}, {"xApiKey": []}]
    assert "application/x-ndjson" in paths["/api/chat"]["post"]["responses"]["200"]["content"]
    assert set(paths["/api/tags"]) == {"get"} and paths["/api/version"]["get"]["security"] == []


def test_every_ollama_route_but_version_needs_a_key(gw: TestClient) -> None:
    paths = gw.get("/openapi.json").json()["paths"]
    routes = [(m, p) for p, ops in paths.items() for m in ops if p.startswith("/api/")]
    assert len(routes) == 8
    for method, path in routes:
        reply = gw.request(method.upper(), path, json={"model": "fake-chat"})
        assert reply.status_code == (200 if path == "/api/version" else 401), (method, path, reply.text)


def test_keep_alive_sets_how_long_the_model_stays_loaded(client: TestClient) -> None:
    from hearth.api.ollama.mapper import keep_alive

    assert [keep_alive(v) for v in ("5m", "1h30m", "300", 12, "-1", "0", None)] == [
        300.0, 5400.0, 300.0, 12.0, -1.0, 0.0, None,
    ]  # fmt: skip
    bad = client.post("/api/embed", json={"model": "fake-embed", "input": "a", "keep_alive": "soon"})
    assert bad.status_code == 400 and "keep_alive" in bad.json()["error"]
    slot = client.app.state.registry.entry("fake-embed")  # type: ignore[attr-defined]
    assert (
        client.post("/api/embed", json={"model": "fake-embed", "input": "a", "keep_alive": "10m"}).status_code
        == 200
    )
    assert slot.keep_alive() == 600.0
    assert (
        client.post("/api/embed", json={"model": "fake-embed", "input": "a", "keep_alive": 0}).status_code
        == 200
    )
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and slot.state != "unloaded":
        time.sleep(0.05)
    assert slot.state == "unloaded"  # keep_alive 0: unloaded as soon as it was idle
    again = client.post("/api/embed", json={"model": "fake-embed", "input": "b", "keep_alive": -1})
    assert again.status_code == 200 and slot.state == "ready" and slot.keep_alive() is None
