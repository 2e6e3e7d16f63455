"""The ``openai`` SDK's Responses API on the real default chat model (SmolLM2-135M-Instruct)."""

from __future__ import annotations

import time

import openai
import pytest

from tests.helpers.live import LiveServer

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def sdk(real_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=real_server.url + "/v1", api_key="not-needed-with-no-auth", max_retries=0)


def test_answers(sdk: openai.OpenAI) -> None:
    response = sdk.responses.create(
        model="smollm2",
        instructions="You answer in one short sentence.",
        input="What is the capital of France?",
        max_output_tokens=24,
    )
    assert response.model == "smollm2" and response.status in {"completed", "incomplete"}
    assert "Paris" in response.output_text
    assert response.usage is not None and response.usage.input_tokens > 10
    assert 0 < response.usage.output_tokens <= 24


def test_a_chain_reuses_the_previous_turn_from_the_slot_cache(sdk: openai.OpenAI) -> None:
    first = sdk.responses.create(
        model="smollm2", input="My name is Ada. Say hello to me.", max_output_tokens=24
    )
    second = sdk.responses.create(
        model="smollm2", input="What is my name?", previous_response_id=first.id, max_output_tokens=16
    )
    assert first.usage is not None and second.usage is not None
    # The second prompt is the first one, its answer, and the new question: the engine
    # prefilled only what the first turn's KV did not already hold.
    assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    assert second.usage.input_tokens_details.cached_tokens >= first.usage.input_tokens
    assert second.output_text.strip()


def test_stream_events(sdk: openai.OpenAI) -> None:
    events = list(
        sdk.responses.create(model="smollm2", input="Say hello.", max_output_tokens=12, stream=True)
    )
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:-1] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    assert kinds[-1] in {"response.completed", "response.incomplete"}
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == events[-1].response.output_text  # type: ignore[union-attr]


def test_background(sdk: openai.OpenAI) -> None:
    queued = sdk.responses.create(
        model="smollm2", input="Name a colour.", background=True, max_output_tokens=12
    )
    assert queued.status == "queued"
    deadline = time.monotonic() + 60
    while (done := sdk.responses.retrieve(queued.id)).status in {"queued", "in_progress"}:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert done.status in {"completed", "incomplete"} and done.output_text.strip()
