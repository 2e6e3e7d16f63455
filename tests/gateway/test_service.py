"""The gateway's neutral service, called directly, as every API family calls it.

What is checked here holds for OpenAI, Anthropic, Ollama and OIP at once: accounting, the one
usage row per call (with its family), key scope, limits and refunds, failures mid-stream, and
cancellation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hearth.app import Root, build_root, running
from hearth.config import Settings
from hearth.errors import ContextLengthExceeded, InvalidRequest, ModelNotFound, PermissionDenied, RateLimited
from hearth.gateway.call import Call
from hearth.gateway.service import Gateway
from hearth.inference.events import GenerationDone, TextDelta
from hearth.inference.types import (
    ChatRequest,
    CompletionRequest,
    EmbedRequest,
    ImagePart,
    Message,
    SamplingOptions,
)
from tests.helpers.apps import fake_settings


@pytest.fixture
async def root(tmp_path: Path) -> AsyncIterator[Root]:
    settings: Settings = fake_settings(tmp_path, no_auth=False)
    built = build_root(settings)
    ready = asyncio.Event()
    async with running(built, ready.set):
        await asyncio.wait_for(ready.wait(), 60)
        yield built


@pytest.fixture
def gateway(root: Root) -> Gateway:
    return root.gateway


async def keyed_call(root: Root, family: Any = "anthropic", **limits: Any) -> Call:
    _, secret = await root.services.accounts.create_key(
        name=f"k{id(limits)}-{len(limits)}-{family}", **limits
    )
    call = root.gateway.open_call("req_test", family, "POST /test")
    await root.gateway.authorize(call, f"Bearer {secret}", None)
    return call


def chat(text: str = "hello there", **fields: Any) -> ChatRequest:
    sampling = SamplingOptions(**fields.pop("sampling", {"max_tokens": 4}))
    return ChatRequest("fake-chat", (Message.of("user", text),), sampling, **fields)


def ledger_rows(root: Root) -> list[dict[str, Any]]:
    assert root.database.ledger.flush(10)
    with root.database.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM usage_records ORDER BY id"))]


async def test_a_chat_accounts_tokens_and_writes_one_row_with_its_family(
    root: Root, gateway: Gateway
) -> None:
    call = await keyed_call(root, "ollama")
    stream = await gateway.chat(call, chat())
    results = await stream.collect()
    assert results[0].finish_reason == "length" and results[0].text
    assert stream.usage.completion_tokens == 4 and stream.usage.prompt_tokens > 0
    await gateway.close_call(call, 200)
    await gateway.close_call(call, 200)  # closing twice writes one row
    (row,) = ledger_rows(root)
    assert (row["family"], row["model"], row["status_code"]) == ("ollama", "fake-chat", 200)
    assert row["completion_tokens"] == 4 and row["key_id"] == call.key_id and row["ttft_ms"] is not None


async def test_errors_are_neutral_and_still_recorded(root: Root, gateway: Gateway) -> None:
    call = await keyed_call(root)
    with pytest.raises(ModelNotFound):
        await gateway.chat(call, ChatRequest("nope", (Message.of("user", "x"),)))
    await gateway.close_call(call, 404, "model_not_found")
    call = await keyed_call(root, "oip")
    with pytest.raises(ContextLengthExceeded):
        await gateway.chat(call, chat(sampling={"max_tokens": 100_000}))
    await gateway.close_call(call, 400, "context_length_exceeded")
    rows = ledger_rows(root)
    assert [(r["family"], r["model"], r["error_type"]) for r in rows] == [
        ("anthropic", "nope", "model_not_found"),
        ("oip", "fake-chat", "context_length_exceeded"),
    ]


async def test_key_scope_is_checked_for_every_capability(root: Root, gateway: Gateway) -> None:
    call = await keyed_call(root, models=["fake-embed"])
    with pytest.raises(PermissionDenied):
        await gateway.chat(call, chat())
    with pytest.raises(PermissionDenied):
        await gateway.complete(call, CompletionRequest("fake-chat", ("hi",)))
    result = await gateway.embed(call, EmbedRequest("fake-embed", ("a b",)))
    assert result.vectors.shape[0] == 1 and call.metering.prompt_tokens == 4


async def test_token_limits_reserve_the_worst_case_and_refund_the_rest(root: Root, gateway: Gateway) -> None:
    _, secret = await root.services.accounts.create_key(name="tpm", tpm=60)

    async def call_with(max_tokens: int) -> Call:
        call = gateway.open_call("req", "openai", "POST /test")
        await gateway.authorize(call, f"Bearer {secret}", None)
        stream = await gateway.chat(call, chat(sampling={"max_tokens": max_tokens, "stop": ("fox",)}))
        await stream.collect()
        await gateway.close_call(call, 200)
        return call

    refused_call = gateway.open_call("req", "openai", "POST /test")
    await gateway.authorize(refused_call, f"Bearer {secret}", None)
    with pytest.raises(RateLimited) as refused:
        await gateway.chat(refused_call, chat(sampling={"max_tokens": 100}))
    assert refused.value.limits is not None and refused.value.limits.tokens_limit == 60
    await gateway.close_call(refused_call, 429)
    # Each call reserves its prompt plus 40 (more than half the minute's 60) but stops after a
    # few tokens at "fox": without the refund the second one would be refused.
    first = await call_with(40)
    second = await call_with(40)
    assert first.total_tokens < 20 and second.rate_limits is not None
    assert second.rate_limits.tokens_remaining is not None and second.rate_limits.tokens_remaining < 60


async def test_a_failure_mid_stream_is_recorded_once(root: Root, gateway: Gateway) -> None:
    call = await keyed_call(root)
    stream = await gateway.chat(call, chat("FAIL_MIDSTREAM", sampling={"max_tokens": 8}))
    seen: list[Any] = []
    with pytest.raises(Exception) as failed:
        async for _, event in stream:
            seen.append(event)
    assert getattr(failed.value, "kind", None) is not None
    assert any(isinstance(e, TextDelta) for e in seen) and not any(
        isinstance(e, GenerationDone) for e in seen
    )
    await gateway.close_call(call, 200)
    (row,) = ledger_rows(root)
    assert (
        row["status_code"] == 500 and row["error_type"] == "engine_failure" and row["completion_tokens"] == 2
    )


async def test_closing_a_stream_cancels_generation(root: Root, gateway: Gateway) -> None:
    engine: Any = root.registry.get("fake-chat", object)
    engine.token_delay_s = 0.02
    call = await keyed_call(root)
    stream = await gateway.chat(call, chat(sampling={"max_tokens": 500}))
    await anext(stream)
    before = engine.cancelled
    await stream.aclose()
    await asyncio.sleep(0.05)
    assert engine.cancelled == before + 1 and engine.running == 0


async def test_images_are_refused_by_a_text_model(root: Root, gateway: Gateway) -> None:
    call = await keyed_call(root)
    message = Message("user", (ImagePart(data=b"\x89PNG"),))
    with pytest.raises(InvalidRequest) as refused:
        await gateway.chat(call, ChatRequest("fake-chat", (message,)))
    assert refused.value.reason == "unsupported_content"


async def test_only_the_callers_stop_strings_are_reported(root: Root, gateway: Gateway) -> None:
    call = await keyed_call(root)
    # The fake's template stop "\nuser:" never appears; the caller's "fox" does.
    stream = await gateway.chat(call, chat("x", sampling={"max_tokens": 20, "stop": ("fox",)}))
    done = [e for _, e in [item async for item in stream] if isinstance(e, GenerationDone)]
    assert done and done[0].stop_sequence == "fox"
