"""Upstream engines: models another server serves (vLLM, SGLang, llama-server, another Hearth,
a cloud API), reached over HTTP in OpenAI's or Anthropic's dialect, behind Hearth's keys, limits,
ledger and rollouts like every local model."""

from hearth.engines.upstream.engine import UpstreamChatEngine, UpstreamEmbeddingEngine

__all__ = ["UpstreamChatEngine", "UpstreamEmbeddingEngine"]
