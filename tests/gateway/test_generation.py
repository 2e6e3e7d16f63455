"""Planning generation: context checks, default max_tokens and template stop sequences."""

from __future__ import annotations

from pathlib import Path

import pytest

from hearth.config import ModelKind, ModelSpec
from hearth.engines.fake import FakeChatEngine
from hearth.errors import ContextLengthExceeded
from hearth.gateway.generation import plan
from hearth.protocol.openai import ChatCompletionRequest


def engine(tmp_path: Path) -> FakeChatEngine:
    spec = ModelSpec(id="c", kind=ModelKind.CHAT, backend="fake", source="-", context_length=100)
    fake = FakeChatEngine(spec, tmp_path)
    fake.load()
    return fake


def request(**fields: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "c", "messages": [{"role": "user", "content": "x"}], **fields}
    )


def test_default_max_tokens_is_the_rest_of_the_context(tmp_path: Path) -> None:
    job = plan(engine(tmp_path), [[1] * 30], request())
    assert job.params.max_tokens == 70
    assert job.worst_case_tokens == 100


def test_chat_adds_template_stops_after_the_callers(tmp_path: Path) -> None:
    job = plan(engine(tmp_path), [[1, 2]], request(stop=["END"], max_tokens=5), chat=True)
    assert job.params.stop == ("END", "\nuser:")
    plain = plan(engine(tmp_path), [[1, 2]], request(stop=["END"], max_tokens=5))
    assert plain.params.stop == ("END",)


def test_prompt_plus_max_tokens_over_context(tmp_path: Path) -> None:
    with pytest.raises(ContextLengthExceeded) as exc:
        plan(engine(tmp_path), [[1] * 60], request(max_tokens=41))
    assert exc.value.param == "max_tokens"
    with pytest.raises(ContextLengthExceeded):
        plan(engine(tmp_path), [[1] * 100], request(max_tokens=1))
