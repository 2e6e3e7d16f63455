"""Batch jobs on the real default models, through the official openai and anthropic SDKs: chat,
Responses and embedding lines answered by the models themselves, an Anthropic message batch, and a replica killed with ``kill -9`` half-way through a
batch, whose unfinished lines another replica on the same PostgreSQL database runs, every line
billed exactly once."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import anthropic
import numpy as np
import openai
import pytest
import sqlalchemy as sa

from tests.helpers.keys import ADMIN
from tests.helpers.live import LiveServer
from tests.helpers.services import drop_postgres_schema, fresh_postgres_schema_url

pytestmark = pytest.mark.real
# Enough work (about 45 s on 2 busy cores) that the first replica is still at it when the
# second has loaded its models (which competes with the batch for the same cores).
LINES = 300


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def wait_for(client: openai.OpenAI, batch_id: str, done: Any, timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if done(batch):
            return batch
        time.sleep(0.25)
    raise AssertionError(f"batch {batch_id}: {client.batches.retrieve(batch_id)}")


def outputs(client: openai.OpenAI, file_id: str | None) -> dict[str, Any]:
    assert file_id is not None
    rows = map(json.loads, client.files.content(file_id).read().decode().splitlines())
    return {row["custom_id"]: row["response"]["body"] for row in rows}


def test_chat_and_embedding_batches_on_the_real_models(real_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=real_server.url + "/v1", api_key="not-needed-with-no-auth", max_retries=0)
    questions = {"france": "What is the capital of France?", "italy": "What is the capital of Italy?"}
    chat = [
        {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": q}], "max_tokens": 24}}
        for cid, q in questions.items()
    ]  # fmt: skip
    batch = client.batches.create(
        input_file_id=client.files.create(file=("chat.jsonl", jsonl(chat)), purpose="batch").id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )
    done = wait_for(client, batch.id, lambda b: b.status in ("completed", "failed"))
    answers = {
        cid: body["choices"][0]["message"]["content"]
        for cid, body in outputs(client, done.output_file_id).items()
    }
    assert done.status == "completed" and "Paris" in answers["france"] and "Rome" in answers["italy"], answers
    asked = {"custom_id": "france", "method": "POST", "url": "/v1/responses",
             "body": {"model": "smollm2-135m-instruct", "input": questions["france"], "max_output_tokens": 24}}  # fmt: skip
    batch = client.batches.create(
        input_file_id=client.files.create(file=("responses.jsonl", jsonl([asked])), purpose="batch").id,
        endpoint="/v1/responses",
        completion_window="24h",
    )
    done = wait_for(client, batch.id, lambda b: b.status in ("completed", "failed"))
    answer = outputs(client, done.output_file_id)["france"]
    assert done.status == "completed" and "Paris" in client.responses.retrieve(answer["id"]).output_text, (
        answer
    )
    texts = ["A cat sleeps on the sofa.", "A kitten naps on the couch.", "I filed my tax return."]
    embed = [
        {"custom_id": f"t{i}", "method": "POST", "url": "/v1/embeddings", "body": {"model": "all-minilm-l6-v2", "input": t}}
        for i, t in enumerate(texts)
    ]  # fmt: skip
    batch = client.batches.create(
        input_file_id=client.files.create(file=("embed.jsonl", jsonl(embed)), purpose="batch").id,
        endpoint="/v1/embeddings",
        completion_window="24h",
    )
    done = wait_for(client, batch.id, lambda b: b.status in ("completed", "failed"))
    vectors = {
        cid: np.array(body["data"][0]["embedding"])
        for cid, body in outputs(client, done.output_file_id).items()
    }
    assert float(vectors["t0"] @ vectors["t1"]) > float(vectors["t0"] @ vectors["t2"]) + 0.3


@pytest.mark.services
def test_a_replica_killed_mid_batch_hands_it_on_and_no_line_is_billed_twice(tmp_path: Path) -> None:
    url, schema = fresh_postgres_schema_url()
    env = {"HEARTH_DATABASE_URL": url, "HEARTH_ADMIN_KEY": ADMIN, "HEARTH_BATCH_STALE_S": "3"}
    first = LiveServer(tmp_path / "a" / "data", env=env, ready_timeout=300).start()
    second: LiveServer | None = None
    try:
        client = openai.OpenAI(
            base_url=first.url + "/v1", api_key=first.create_key(ADMIN, "batcher"), max_retries=0
        )
        lines = [
            {"custom_id": f"n{i}", "method": "POST", "url": "/v1/chat/completions",
             "body": {"model": "smollm2-135m-instruct", "max_tokens": 24,
                      "messages": [{"role": "user", "content": f"Count from {i} to {i + 5}."}]}}
            for i in range(LINES)
        ]  # fmt: skip
        uploaded = client.files.create(file=("n.jsonl", jsonl(lines)), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        wait_for(client, batch.id, lambda b: b.request_counts is not None and b.request_counts.completed >= 4)
        # The second replica starts only now, so the first holds the batch; then the first dies.
        second = LiveServer(tmp_path / "b" / "data", env=env, ready_timeout=300).start()
        before = client.batches.retrieve(batch.id).request_counts
        assert before is not None and before.completed < LINES, "the batch finished before the kill"
        first.stop(signal.SIGKILL)
        survivor = openai.OpenAI(base_url=second.url + "/v1", api_key=client.api_key, max_retries=0)
        done = wait_for(survivor, batch.id, lambda b: b.status in ("completed", "failed"))
        assert done.status == "completed" and done.request_counts is not None
        assert (done.request_counts.completed, done.request_counts.failed) == (LINES, 0)
        assert sorted(outputs(survivor, done.output_file_id)) == sorted(line["custom_id"] for line in lines)
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            billed = conn.execute(
                sa.text(
                    "SELECT custom_id, count(*) FROM usage_records WHERE batch_id = :b GROUP BY custom_id"
                ),
                {"b": batch.id},
            ).all()
        engine.dispose()
        assert len(billed) == LINES and all(n == 1 for _, n in billed), [r for r in billed if r[1] != 1]
    finally:
        first.stop(signal.SIGKILL)
        if second is not None:
            second.stop()
        drop_postgres_schema(schema)


def test_an_anthropic_message_batch_on_the_real_model(real_server: LiveServer) -> None:
    client = anthropic.Anthropic(base_url=real_server.url, api_key="not-needed-with-no-auth", max_retries=0)
    params = {"model": "smollm2-135m-instruct", "max_tokens": 24}
    batch = client.messages.batches.create(
        requests=[  # type: ignore[list-item]
            {
                "custom_id": "france",
                "params": {
                    **params,
                    "messages": [{"role": "user", "content": "What is the capital of France?"}],
                },
            },
            {
                "custom_id": "nope",
                "params": {
                    **params,
                    "model": "no-such-model",
                    "messages": [{"role": "user", "content": "Hi"}],
                },
            },
        ]
    )
    deadline = time.monotonic() + 300
    while client.messages.batches.retrieve(batch.id).processing_status != "ended":
        assert time.monotonic() < deadline
        time.sleep(0.25)
    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert results["france"].type == "succeeded" and "Paris" in results["france"].message.content[0].text  # type: ignore[union-attr]
    assert results["nope"].type == "errored"
