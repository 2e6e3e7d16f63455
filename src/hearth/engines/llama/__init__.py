"""llama.cpp chat engine with continuous batching (see ``scheduler`` for how steps are built)."""

from hearth.engines.llama.engine import LlamaEngine

__all__ = ["LlamaEngine"]
