"""The official ``ollama`` client against a live ``hearth serve`` on the real default models."""

from __future__ import annotations

import numpy as np
import ollama
import pytest

from tests.helpers.live import LiveServer

pytestmark = pytest.mark.real

CHAT = "smollm2-135m-instruct:latest"  # the default chat model
BASE = "gemma-3-270m"  # a base model, for raw completions
EMBED = "all-minilm-l6-v2"


@pytest.fixture(scope="module")
def client(real_server: LiveServer) -> ollama.Client:
    return ollama.Client(host=real_server.url, timeout=120)


def test_chat(client: ollama.Client) -> None:
    reply = client.chat(
        model=CHAT,
        messages=[
            {"role": "system", "content": "You answer in one short sentence."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        options={"temperature": 0, "num_predict": 16},
        stream=False,
    )
    assert "Paris" in (reply.message.content or "")
    assert reply.model == CHAT and reply.done and reply.done_reason in {"stop", "length"}
    assert (reply.prompt_eval_count or 0) > 10 and 0 < (reply.eval_count or 0) <= 16
    assert (reply.eval_duration or 0) > 0 and (reply.total_duration or 0) > (reply.eval_duration or 0)


def test_chat_stream(client: ollama.Client) -> None:
    parts = list(
        client.chat(
            model=CHAT,
            messages=[{"role": "user", "content": "Count from one to five."}],
            options={"temperature": 0, "num_predict": 12},
            stream=True,
        )
    )
    assert len(parts) > 3  # token by token, not in one piece
    assert "".join(p.message.content or "" for p in parts).strip()
    final = parts[-1]
    assert final.done and final.done_reason in {"stop", "length"} and 0 < (final.eval_count or 0) <= 12


def test_generate_sampling_options_reach_the_real_sampler(client: ollama.Client) -> None:
    def raw(prompt: str, **options: float) -> str:
        reply = client.generate(model=BASE, prompt=prompt, raw=True, options={"num_predict": 10, **options})
        return reply.response

    # At a high temperature, draws spread out unless top_k keeps only the likeliest token.
    prompt, hot = "The capital of France is", {"temperature": 2.0, "top_p": 1.0, "repeat_penalty": 1.0}
    spread = {raw(prompt, num_predict=4, top_k=0, seed=seed, **hot) for seed in range(4)}
    narrow = {raw(prompt, num_predict=4, top_k=1, seed=seed, **hot) for seed in range(4)}
    assert len(spread) > 1 and len(narrow) == 1
    repeating = raw("a a a a a a a a a a", temperature=0, repeat_penalty=1.0)
    assert repeating == " a" * 10
    assert raw("a a a a a a a a a a", temperature=0, repeat_penalty=1.5) != repeating
    # Left unset, sampling takes Ollama's defaults (temperature 0.8, top_k 40, ...): still text.
    pieces = list(
        client.generate(model=CHAT, prompt="One, two, three,", options={"num_predict": 6}, stream=True)
    )
    assert "".join(p.response for p in pieces).strip() and pieces[-1].done


def test_embed(client: ollama.Client) -> None:
    reply = client.embed(model=EMBED, input=["a small cat", "a little kitten", "a red car"])
    vectors = np.array(reply.embeddings)
    assert vectors.shape == (3, 384) and (reply.prompt_eval_count or 0) > 6
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    legacy = client.embeddings(model=EMBED, prompt="a small cat")
    assert np.allclose(legacy.embedding, vectors[0], atol=1e-5)


def test_list_show_ps(client: ollama.Client) -> None:
    tagged = [CHAT, "gemma-3-270m:latest", "all-minilm-l6-v2:latest"]
    assert [m.model for m in client.list().models] == tagged
    shown = client.show(CHAT)
    assert shown.details is not None
    assert (shown.details.format, shown.details.family, shown.details.quantization_level) == (
        "gguf",
        "llama",
        "Q4_1",
    )
    assert (shown.details.parameter_size or "").endswith("M")
    # Every chat model takes tools: the gateway prompts and parses them for any template.
    assert shown.capabilities == ["completion", "tools"]
    assert shown.modelinfo is not None and shown.modelinfo["llama.context_length"] == 8192
    # The model's configured sampling, and Ollama's top_k where it sets none.
    # (SmolLM2's defaults: greedy, with a repeat penalty; see hearth.config.default_models.)
    assert "temperature                    0.0" in (shown.parameters or "")
    assert "repeat_penalty                 1.1" in (shown.parameters or "")
    assert "top_k                          40" in (shown.parameters or "")
    gemma = client.show("gemma3")  # an alias
    assert gemma.details is not None and (gemma.details.family, gemma.details.quantization_level) == (
        "gemma3",
        "Q4_K_M",
    )
    embed = client.show(EMBED)
    assert embed.capabilities == ["embedding"] and embed.modelinfo is not None
    assert 384 in embed.modelinfo.values()
    running = client.ps().models
    assert {m.model for m in running} == set(tagged)
    assert all((m.size or 0) > 1e6 for m in running)


def test_unknown_model(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as missing:
        client.chat(model="llama3:8b", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.status_code == 404
    assert missing.value.error.startswith(f"model 'llama3:8b' not found; the models you may use: {CHAT[:-7]}")


def test_unload_and_load_the_real_base_model(client: ollama.Client) -> None:
    """Ollama's idioms on a real GGUF: ``keep_alive=0`` frees it, an empty prompt loads it
    again, and the next request after an unload reports the load's duration."""
    assert client.generate(model=BASE, keep_alive=0).done_reason == "unload"
    assert f"{BASE}:latest" not in {m.model for m in client.ps().models}
    assert client.generate(model=BASE).done_reason == "load"
    assert f"{BASE}:latest" in {m.model for m in client.ps().models}
    client.generate(model=BASE, keep_alive=0)
    reply = client.generate(model=BASE, prompt="Once upon a time", raw=True, options={"num_predict": 4})
    assert reply.response and (reply.load_duration or 0) > 1_000_000  # it loaded again, for this request
