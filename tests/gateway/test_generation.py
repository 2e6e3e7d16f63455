"""Planning generation: context checks, default max_tokens and template stop sequences."""

from __future__ import annotations

from pathlib import Path

import pytest

from hearth.config import ModelKind, ModelSpec
from hearth.engines.context import EngineContext
from hearth.engines.fake import FakeChatEngine
from hearth.errors import ContextLengthExceeded, Subject
from hearth.gateway.planning import plan
from hearth.inference.types import SamplingOptions


def engine(tmp_path: Path) -> FakeChatEngine:
    spec = ModelSpec(id="c", kind=ModelKind.CHAT, backend="fake", source="-", context_length=100)
    fake = FakeChatEngine(spec, EngineContext(tmp_path))
    fake.load()
    return fake


def test_default_max_tokens_is_the_rest_of_the_context(tmp_path: Path) -> None:
    job = plan(engine(tmp_path), [[1] * 30], SamplingOptions())
    assert job.params.max_tokens == 70
    assert job.worst_case_tokens == 100


def test_chat_adds_template_stops_after_the_callers(tmp_path: Path) -> None:
    options = SamplingOptions(stop=("END",), max_tokens=5)
    job = plan(engine(tmp_path), [[1, 2]], options, chat=True)
    assert job.params.stop == ("END", "\nuser:")
    assert job.caller_stops == ("END",)
    plain = plan(engine(tmp_path), [[1, 2]], options)
    assert plain.params.stop == ("END",)


def test_prompt_plus_max_tokens_over_context(tmp_path: Path) -> None:
    with pytest.raises(ContextLengthExceeded) as exc:
        plan(engine(tmp_path), [[1] * 60], SamplingOptions(max_tokens=41))
    assert exc.value.subject is Subject.OUTPUT_LIMIT and exc.value.param is None
    assert "{output_limit} (41)" in exc.value.message  # each family writes its own field name
    with pytest.raises(ContextLengthExceeded):
        plan(engine(tmp_path), [[1] * 100], SamplingOptions(max_tokens=1))


def test_num_ctx_narrows_the_context(tmp_path: Path) -> None:
    with pytest.raises(ContextLengthExceeded) as exc:
        plan(engine(tmp_path), [[1] * 30], SamplingOptions(max_tokens=30), context_limit=50)
    assert exc.value.subject is Subject.CONTEXT_WINDOW
    assert plan(engine(tmp_path), [[1] * 30], SamplingOptions(), context_limit=50).params.max_tokens == 20
