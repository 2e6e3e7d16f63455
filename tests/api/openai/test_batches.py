"""OpenAI's Batch API through the official SDK, on fake engines: a file of good lines and lines
that fail, every line's output or error by custom_id, one usage row per line that names its
batch, the key's scope applied to lines, malformed files reported per line, cancelling, paging
and another key's batches absent."""

from __future__ import annotations

import json
import time
from typing import Any

import openai
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.conftest import MakeKey
from tests.helpers.ledger import flush_ledger


def sdk(client: TestClient, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://testserver/v1", api_key=secret, http_client=client, max_retries=0)


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def chat_line(custom_id: str, model: str = "fake-chat", **body: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": f"question {custom_id}"}]
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": model, "messages": messages, "max_tokens": 8, **body}}  # fmt: skip


def wait_for(client: openai.OpenAI, batch_id: str, *states: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if batch.status in states:
            return batch
        time.sleep(0.1)
    raise AssertionError(f"batch {batch_id} is {client.batches.retrieve(batch_id).status}, not {states}")


def lines_of(client: openai.OpenAI, file_id: str | None) -> dict[str, dict[str, Any]]:
    if file_id is None:
        return {}
    text = client.files.content(file_id).read().decode()
    return {row["custom_id"]: row for row in map(json.loads, text.splitlines())}


def test_a_mixed_batch_completes_with_outputs_errors_and_one_row_per_line(
    gw: TestClient, make_key: MakeKey
) -> None:
    client = sdk(gw, make_key("batcher"))
    lines = [chat_line(f"ok-{i}") for i in range(5)] + [chat_line("unknown-model", model="no-such-model")]
    lines.append({"custom_id": "too-long", "method": "POST", "url": "/v1/chat/completions",
                  "body": {"model": "fake-chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": 10**7}})  # fmt: skip
    uploaded = client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "t"},
    )
    assert batch.status == "validating" and batch.metadata == {"job": "t"} and batch.object == "batch"
    done = wait_for(client, batch.id, "completed", "failed")
    assert done.status == "completed", done.errors
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (7, 5, 2)
    assert done.in_progress_at and done.finalizing_at and done.completed_at
    outputs = lines_of(client, done.output_file_id)
    assert sorted(outputs) == [f"ok-{i}" for i in range(5)]
    answer = outputs["ok-0"]["response"]
    assert answer["status_code"] == 200 and answer["body"]["object"] == "chat.completion"
    assert answer["body"]["choices"][0]["message"]["content"]
    errors = lines_of(client, done.error_file_id)
    assert errors["unknown-model"]["response"]["status_code"] == 404
    assert errors["unknown-model"]["response"]["body"]["error"]["code"] == "model_not_found"
    assert errors["too-long"]["response"]["status_code"] == 400
    flush_ledger(gw)
    with gw.app.state.root.database.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(
            sa.text(
                "SELECT custom_id, status_code, completion_tokens FROM usage_records WHERE batch_id = :b"
            ),
            {"b": batch.id},
        ).all()
    by_line = {r.custom_id: r for r in rows}
    assert len(rows) == 7 and set(by_line) == {line["custom_id"] for line in lines}
    assert by_line["ok-1"].status_code == 200 and by_line["ok-1"].completion_tokens > 0
    assert by_line["unknown-model"].status_code == 404
    apart = gw.get("/v1/usage", headers={"Authorization": f"Bearer {client.api_key}"}).json()["batches"]
    assert apart[batch.id]["requests"] == 7 and apart[batch.id]["errors"] == 2


def test_embeddings_and_completions_batches(gw: TestClient, make_key: MakeKey) -> None:
    client = sdk(gw, make_key("embedder"))
    for endpoint, body in (
        ("/v1/embeddings", {"model": "fake-embed", "input": "hello"}),
        ("/v1/completions", {"model": "fake-chat", "prompt": "Once upon", "max_tokens": 5}),
        ("/v1/responses", {"model": "fake-chat", "input": "Say hi", "max_output_tokens": 5}),
    ):
        lines = [{"custom_id": f"l{i}", "method": "POST", "url": endpoint, "body": body} for i in range(3)]
        uploaded = client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
        batch = client.batches.create(input_file_id=uploaded.id, endpoint=endpoint, completion_window="24h")  # type: ignore[arg-type]
        done = wait_for(client, batch.id, "completed", "failed")
        outputs = lines_of(client, done.output_file_id)
        assert done.status == "completed" and sorted(outputs) == ["l0", "l1", "l2"]
        expected = {"/v1/embeddings": "list", "/v1/completions": "text_completion"}.get(endpoint, "response")
        assert outputs["l0"]["response"]["body"]["object"] == expected


def test_a_responses_batch_stores_its_answers_and_refuses_background_lines(
    gw: TestClient, make_key: MakeKey
) -> None:
    client = sdk(gw, make_key("responder"))
    body = {"model": "fake-chat", "input": "Say hi", "max_output_tokens": 5}
    lines = [
        {"custom_id": "stored", "method": "POST", "url": "/v1/responses", "body": body},
        {"custom_id": "bg", "method": "POST", "url": "/v1/responses", "body": {**body, "background": True}},
        {"custom_id": "no-input", "method": "POST", "url": "/v1/responses", "body": {"model": "fake-chat"}},
    ]
    uploaded = client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/responses", completion_window="24h"
    )
    done = wait_for(client, batch.id, "completed", "failed")
    assert done.status == "completed" and done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (1, 2)
    answer = lines_of(client, done.output_file_id)["stored"]["response"]["body"]
    assert answer["object"] == "response" and answer["output"]
    assert answer["status"] in ("completed", "incomplete")  # max_output_tokens 5 may cut it short
    stored = client.responses.retrieve(answer["id"])  # a stored response, as the route makes
    assert stored.status == answer["status"] and stored.output_text
    errors = lines_of(client, done.error_file_id)
    assert errors["bg"]["response"]["status_code"] == 400
    assert errors["bg"]["response"]["body"]["error"]["param"] == "background"
    assert errors["no-input"]["response"]["status_code"] == 400


def test_malformed_lines_fail_the_batch_one_error_per_line(gw: TestClient, make_key: MakeKey) -> None:
    client = sdk(gw, make_key("sloppy"))
    text = (
        json.dumps(chat_line("a")) + "\n"
        + "{not json\n"
        + json.dumps({**chat_line("a")}) + "\n"
        + json.dumps({**chat_line("c"), "url": "/v1/embeddings"}) + "\n"
        + json.dumps({"method": "POST", "url": "/v1/chat/completions", "body": {}}) + "\n"
    ).encode()  # fmt: skip
    uploaded = client.files.create(file=("bad.jsonl", text), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    failed = wait_for(client, batch.id, "failed", "completed")
    assert failed.status == "failed" and failed.failed_at and failed.errors is not None
    found = {(e.line, e.code) for e in failed.errors.data or []}
    assert found == {
        (2, "invalid_json_line"),
        (3, "duplicate_custom_id"),
        (4, "invalid_value"),
        (5, "missing_required_parameter"),
    }


def test_a_keys_scope_applies_to_its_lines(gw: TestClient, make_key: MakeKey) -> None:
    client = sdk(gw, make_key("scoped", models=["fake-embed"]))
    uploaded = client.files.create(file=("in.jsonl", jsonl([chat_line("x")])), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = wait_for(client, batch.id, "completed", "failed")
    assert done.request_counts is not None and done.request_counts.failed == 1
    assert lines_of(client, done.error_file_id)["x"]["response"]["status_code"] == 403


def test_cancel_paging_and_another_keys_batches(gw: TestClient, make_key: MakeKey) -> None:
    client = sdk(gw, make_key("canceller"))
    engine: Any = gw.app.state.registry.get("fake-chat", object)  # type: ignore[attr-defined]
    engine.token_delay_s = 0.005  # 40 lines of 40 tokens, 8 at a time: about a second in all
    lines = [chat_line(f"n{i}", max_tokens=40) for i in range(40)]
    uploaded = client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    wait_for(client, batch.id, "in_progress", "completed")
    cancelling = client.batches.cancel(batch.id)
    # A batch whose lines have all run (finalizing) ends completed whatever a cancel says.
    assert cancelling.status in ("cancelling", "finalizing", "completed") and (
        cancelling.status != "cancelling" or cancelling.cancelling_at
    )
    done = wait_for(client, batch.id, "cancelled", "completed")
    print(f"cancel half-way: {done.status}, {done.request_counts}")
    if done.status == "cancelled":
        assert done.cancelled_at and done.request_counts is not None
        assert done.request_counts.completed + done.request_counts.failed < 40
        skipped = [r for r in lines_of(client, done.error_file_id).values() if r["error"]]
        assert skipped and all(r["error"]["code"] == "batch_cancelled" for r in skipped)
    second = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    client.batches.cancel(second.id)
    page = client.batches.list(limit=1)
    assert [b.id for b in page.data] == [second.id] and page.has_more
    assert [b.id for b in client.batches.list(limit=1, after=second.id).data] == [batch.id]
    stranger = sdk(gw, make_key("stranger-b"))
    with pytest.raises(openai.NotFoundError):
        stranger.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        stranger.batches.cancel(batch.id)
    assert list(stranger.batches.list()) == []


def test_bad_batch_requests(gw: TestClient, make_key: MakeKey) -> None:
    client = sdk(gw, make_key("bad-batch"))
    notes = client.files.create(file=("n.txt", b"hello"), purpose="user_data")
    with pytest.raises(openai.NotFoundError, match="No such File object"):
        client.batches.create(
            input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
        )
    with pytest.raises(openai.BadRequestError, match="purpose must be batch"):
        client.batches.create(
            input_file_id=notes.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    with pytest.raises(openai.BadRequestError, match="endpoint must be one of"):
        client.batches.create(input_file_id=notes.id, endpoint="/v1/moderations", completion_window="24h")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="completion_window"):
        client.batches.create(input_file_id=notes.id, endpoint="/v1/chat/completions", completion_window="1h")  # type: ignore[arg-type]


def test_a_batch_over_the_keys_enqueued_token_limit_fails_as_openai_reports_it(
    gw: TestClient, make_key: MakeKey
) -> None:
    client = sdk(gw, make_key("queued", batch_queued_tokens=200))
    uploaded = client.files.create(
        file=("in.jsonl", jsonl([chat_line(f"c{i}") for i in range(40)])), purpose="batch"
    )
    over = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert over.status == "failed" and over.errors is not None and over.errors.data is not None
    assert over.errors.data[0].code == "token_limit_exceeded"
    small = client.files.create(file=("s.jsonl", jsonl([chat_line("one")])), purpose="batch")
    fits = client.batches.create(
        input_file_id=small.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert wait_for(client, fits.id, "completed", "failed").status == "completed"


def test_embedding_lines_share_engine_calls_yet_each_gets_its_own_answer_and_row(
    gw: TestClient, make_key: MakeKey
) -> None:
    """Embedding lines run in groups through one engine call; every line's vector, format,
    error and usage row must be what the same request would get alone."""
    client = sdk(gw, make_key("grouped"))

    def line(custom_id: str, **body: Any) -> dict[str, Any]:
        return {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings", "body": {"model": "fake-embed", **body}}  # fmt: skip

    lines = [line(f"t{i}", input=f"text number {i} " * (i % 4 + 1)) for i in range(40)]
    lines += [line("pair", input=["first of two", "second of two words"])]
    lines += [line(f"b64-{i}", input=f"in base64 {i}", encoding_format="base64") for i in range(3)]
    lines += [line("empty", input=[]), line("nomodel", input="x", model="no-such-model")]
    lines += [line("dims", input="wrong size", dimensions=7)]
    uploaded = client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    done = wait_for(client, batch.id, "completed", "failed")
    assert done.status == "completed" and done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (44, 3)
    outputs, errors = lines_of(client, done.output_file_id), lines_of(client, done.error_file_id)
    for custom_id in ("t0", "t7", "t39", "pair", "b64-1"):
        body = next(item["body"] for item in lines if item["custom_id"] == custom_id)
        alone = gw.post(
            "/v1/embeddings", json=body, headers={"Authorization": f"Bearer {client.api_key}"}
        ).json()
        got = outputs[custom_id]["response"]["body"]
        assert got["data"] == alone["data"] and got["usage"] == alone["usage"], custom_id
    assert errors["empty"]["response"]["status_code"] == 400
    assert errors["nomodel"]["response"]["body"]["error"]["code"] == "model_not_found"
    assert errors["dims"]["response"]["status_code"] == 400
    flush_ledger(gw)
    with gw.app.state.root.database.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(
            sa.text("SELECT custom_id, prompt_tokens, model FROM usage_records WHERE batch_id = :b"),
            {"b": batch.id},
        ).all()
    by_line = {r.custom_id: r for r in rows}
    assert len(rows) == 47 and set(by_line) == {item["custom_id"] for item in lines}
    assert by_line["t3"].prompt_tokens == outputs["t3"]["response"]["body"]["usage"]["prompt_tokens"]
    assert by_line["pair"].prompt_tokens == outputs["pair"]["response"]["body"]["usage"]["prompt_tokens"]
    assert {by_line[f"t{i}"].model for i in range(40)} == {"fake-embed"}
