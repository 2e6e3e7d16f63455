"""High availability on the real default chat model: 3 replicas behind nginx, one killed mid-load.

The same cluster as test_ha.py (PostgreSQL, Redis, the shipped nginx config), but every replica
serves SmolLM2 through llama.cpp, and the clients are the official OpenAI SDK. Non-streaming
chats must all succeed across the kill (nginx retries those whose replica died), a stream the
kill cut must end without its final chunk, and the ledger must hold one row per answer.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import openai
import pytest

from hearth.config import default_models
from tests.deploy.ha_cluster import Cluster, Outcome, binary, tally, wait_until
from tests.deploy.helpers import unavailable
from tests.helpers.services import drop_postgres_schema, fresh_postgres_schema_url, redis_url

pytestmark = [pytest.mark.real, pytest.mark.cluster]

REPLICAS = 3
CHAT = default_models()[0].model_dump(mode="json", exclude={"image_model"})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if binary("nginx") is None:
        unavailable("nginx is not installed (make system-deps: nginx-light)")
    url, schema = fresh_postgres_schema_url()
    running = Cluster(tmp_path_factory.mktemp("ha-real"), url, redis_url(), models=[CHAT])
    try:
        yield running.start(REPLICAS)
    finally:
        running.stop()
        drop_postgres_schema(schema)


def _one(sdk: openai.OpenAI, kind: str, request_id: str) -> Outcome:
    outcome = Outcome(request_id, kind)
    messages: list[dict[str, str]] = [{"role": "user", "content": "Name a colour."}]
    headers = {"x-request-id": request_id}
    try:
        if kind == "chat":
            reply = sdk.chat.completions.with_raw_response.create(
                model="smollm2",
                messages=messages,
                max_tokens=8,
                extra_headers=headers,  # type: ignore[arg-type]
            )
            outcome.status = reply.status_code
            outcome.upstream = reply.headers.get("x-upstream")
            outcome.answered = reply.parse().choices[0].finish_reason is not None
        else:
            finished = False
            with sdk.chat.completions.with_streaming_response.create(
                model="smollm2",
                messages=messages,
                max_tokens=24,
                stream=True,
                extra_headers=headers,  # type: ignore[arg-type]
            ) as raw:
                outcome.status = raw.status_code
                outcome.upstream = raw.headers.get("x-upstream")
                for chunk in raw.parse():
                    finished = finished or any(c.finish_reason for c in chunk.choices)
            outcome.answered, outcome.cut = finished, not finished
    except openai.APIError as exc:
        if kind == "stream" and outcome.status == 200:
            outcome.cut = True  # the connection broke mid-stream, before the final chunk
        outcome.error = f"{type(exc).__name__}: {exc}"
    return outcome


def test_kill_one_real_replica_under_load(cluster: Cluster) -> None:
    secret = cluster.create_key("ha-real")
    prefix = f"real-kill-{uuid.uuid4().hex[:8]}"
    outcomes: list[Outcome] = []
    lock, stop = threading.Lock(), threading.Event()

    def worker(w: int) -> None:
        # No SDK retries: every retry here is the load balancer's.
        sdk = openai.OpenAI(base_url=cluster.url + "/v1", api_key=secret, max_retries=0, timeout=60)
        n = 0
        while not stop.is_set():
            outcome = _one(sdk, ("chat", "stream")[(w + n) % 2], f"{prefix}-{w}-{n}")
            with lock:
                outcomes.append(outcome)
            n += 1

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(4)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(outcomes) >= 12, timeout=120)
    cluster.kill(1)
    killed_at = len(outcomes)
    wait_until(lambda: len(outcomes) >= killed_at + 24, timeout=180)
    stop.set()
    for thread in threads:
        thread.join(90)

    failed = [o for o in outcomes if not o.answered and not o.cut]
    assert failed == [], failed[:5]
    assert all(o.kind == "stream" for o in outcomes if o.cut)
    survivors = {f"127.0.0.1:{cluster.replicas[i].port}" for i in (0, 2)}
    # nginx moved off the dead replica: later answers came from the others ($upstream_addr lists
    # every replica a request was tried on, the one that answered last).
    assert {(o.upstream or "").split(", ")[-1] for o in outcomes[killed_at + 8 :]} <= survivors

    def settled() -> dict[str, list[int]]:
        return cluster.ledger(prefix)

    wait_until(
        lambda: sum(len(v) for v in settled().values()) >= sum(o.answered for o in outcomes), timeout=10
    )
    result = tally(outcomes, settled())
    assert result.duplicates == [] and result.strays == []
    assert result.answered_with_one_row == result.answered, result.as_dict()
