"""Rollouts on the real chat models, through the official clients of every family and OIP v2.

A live ``hearth serve`` with SmolLM2 and gemma-3-270m; the public id ``chat`` is a route made
through the admin API. Shadow: SmolLM2 answers every family, gemma gets the mirrored copy, and
the ledger records gemma's tokens, latency and agreement with the live answer. Then a canary
split reaches both variants, and a blue-green switch moves all traffic at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
import sqlalchemy as sa

from hearth.config import default_models
from tests.helpers.live import LiveServer

pytestmark = pytest.mark.real

ADMIN = "hk-admin-rollouts-real"
LIVE, SHADOW = "smollm2-135m-instruct", "gemma-3-270m"
MODELS = [
    m.model_dump(mode="json") | {"image_model": None} for m in default_models() if m.id in (LIVE, SHADOW)
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("rollouts-real") / "data"
    env = {"HEARTH_ADMIN_KEY": ADMIN, "HEARTH_MODELS": json.dumps(MODELS), "HEARTH_LOG_LEVEL": "warning"}
    live = LiveServer(data, env=env).start()
    try:
        yield live
    finally:
        live.stop()


def put_route(server: LiveServer, body: dict[str, object]) -> None:
    reply = httpx.put(
        server.url + "/admin/routes/chat", json=body, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert reply.status_code == 200, reply.text


def shadow_rows(data_dir: Path) -> list[sa.Row[tuple[str | None, str | None, float | None, int]]]:
    engine = sa.create_engine(f"sqlite:///{data_dir / 'hearth.db'}")
    try:
        with engine.connect() as conn:
            query = "SELECT variant, shadow_of, agreement, completion_tokens FROM usage_records WHERE shadow_of IS NOT NULL"
            return list(conn.execute(sa.text(query)).all())
    finally:
        engine.dispose()


def test_shadow_canary_and_blue_green_on_the_real_models(server: LiveServer) -> None:
    secret = server.create_key(ADMIN, "rollouts")
    put_route(server, {"strategy": "shadow", "variants": [{"model": LIVE, "weight": 100}], "shadow": SHADOW})
    question = [{"role": "user", "content": "What is the capital of France?"}]

    sdk = openai.OpenAI(base_url=server.url + "/v1", api_key=secret)
    chat = sdk.chat.completions.with_raw_response.create(model="chat", messages=question, max_tokens=16)  # type: ignore[arg-type]
    assert chat.headers["x-hearth-variant"] == LIVE and chat.parse().choices[0].message.content
    responses = sdk.responses.with_raw_response.create(
        model="chat", input="Name a colour.", max_output_tokens=16
    )
    assert responses.headers["x-hearth-variant"] == LIVE and responses.parse().output_text

    claude = anthropic.Anthropic(base_url=server.url, api_key=secret)
    message = claude.messages.with_raw_response.create(model="chat", max_tokens=16, messages=question)  # type: ignore[arg-type]
    assert message.headers["x-hearth-variant"] == LIVE and message.parse().content[0].type == "text"

    ollama = httpx.post(
        server.url + "/api/chat",
        json={"model": "chat", "messages": question, "stream": False, "options": {"num_predict": 16}},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=60,
    )
    assert ollama.status_code == 200 and ollama.headers["x-hearth-variant"] == LIVE
    assert ollama.json()["message"]["content"]

    # The shadow's copies: off the request path, so they land a little later.
    deadline = time.monotonic() + 60
    while len(rows := shadow_rows(server.data_dir)) < 4 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(rows) == 4, rows
    for variant, shadow_of, agreement, completion_tokens in rows:
        assert variant == SHADOW and shadow_of is not None
        assert agreement is not None and 0.0 <= agreement <= 1.0 and completion_tokens > 0

    put_route(
        server,
        {"strategy": "canary", "variants": [{"model": LIVE, "weight": 50}, {"model": SHADOW, "weight": 50}]},
    )
    seen = {
        sdk.chat.completions.with_raw_response.create(model="chat", messages=question, max_tokens=1).headers[  # type: ignore[arg-type]
            "x-hearth-variant"
        ]
        for _ in range(16)
    }
    assert seen == {LIVE, SHADOW}  # both variants drawn (a 50/50 split misses one in 2^15 runs)

    put_route(
        server,
        {
            "strategy": "blue-green",
            "variants": [{"model": LIVE, "weight": 0}, {"model": SHADOW, "weight": 100}],
        },
    )
    served = {
        sdk.chat.completions.with_raw_response.create(model="chat", messages=question, max_tokens=1).headers[  # type: ignore[arg-type]
            "x-hearth-variant"
        ]
        for _ in range(5)
    }
    assert served == {SHADOW}

    # The same route alias through OIP v2: metadata, then a completion (Triton's text_input).
    keyed = {"Authorization": f"Bearer {secret}"}
    metadata = httpx.get(server.url + "/v2/models/chat", headers=keyed)
    assert metadata.status_code == 200 and metadata.json()["name"] == "chat"
    prompt = {
        "inputs": [{"name": "text_input", "shape": [1], "datatype": "BYTES", "data": ["Once upon a time"]}]
    }
    infer = httpx.post(
        server.url + "/v2/models/chat/infer",
        json={**prompt, "parameters": {"max_tokens": 8}},
        headers=keyed,
        timeout=60,
    )
    assert infer.status_code == 200 and infer.headers["x-hearth-variant"] == SHADOW
    assert infer.json()["outputs"][0]["data"][0]
