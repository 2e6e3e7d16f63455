"""Engine interfaces: one abstract class per capability, with capability flags.

An engine owns a loaded model and runs inference off the event loop (in its own threads), so
routes only ``await``. Engines never see HTTP: they take plain dataclasses and raise
``hearth.errors`` exceptions.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from PIL import Image

from hearth.config import ModelKind, ModelSpec

if TYPE_CHECKING:
    from hearth.engines.constraints import Constraint

FinishReason = Literal["stop", "length", "cancelled", "error"]


@dataclass(frozen=True)
class ModelInfo:
    """What ``hearth models info`` and ``GET /v1/models/{id}`` show."""

    id: str
    kind: ModelKind
    backend: str
    parameters: int | None = None
    file_size_bytes: int | None = None
    quantization: str | None = None
    context_length: int | None = None
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EngineActivity:
    """What an engine is doing now and has done since it loaded; exported at ``/metrics``.

    ``batch_items / batches`` is the mean batch size: tokens per decode step for an LLM, texts or
    images per forward pass for the dynamically batched engines.
    """

    running: int = 0  # sequences holding a slot, or items in the forward pass now running
    waiting: int = 0  # queued for a slot or for the next batch
    batches: int = 0  # forward passes (llama_decode calls, embedding/vision batches)
    batch_items: int = 0


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    # What the output must match (a JSON schema, a grammar, tool calls); built and checked by
    # hearth.engines.constraints. A complete match ends the generation with "stop".
    constraint: Constraint | None = None


@dataclass(frozen=True)
class TextDelta:
    """A piece of generated text. ``text`` may be empty while a stop string is still undecided."""

    text: str
    tokens: int = 1


@dataclass(frozen=True)
class GenerationDone:
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0


GenerationEvent = TextDelta | GenerationDone


@dataclass(frozen=True)
class Embeddings:
    vectors: np.ndarray  # shape (n, dim), float32
    token_counts: list[int]


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    index: int


class Engine(abc.ABC):
    """A loaded model. ``load`` is blocking and runs once at startup, in a worker thread."""

    kind: ClassVar[ModelKind]

    def __init__(self, spec: ModelSpec, data_dir: Any) -> None:
        self.spec = spec
        self.data_dir = data_dir

    @abc.abstractmethod
    def load(self) -> None: ...

    @abc.abstractmethod
    def info(self) -> ModelInfo: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release threads and native memory."""

    def activity(self) -> EngineActivity:
        """Queue and batching counters; engines without a queue report nothing."""
        return EngineActivity()


class ChatEngine(Engine):
    """Text generation: serves chat and completions."""

    kind = ModelKind.CHAT
    supports_logit_bias: ClassVar[bool] = True
    supports_constraints: ClassVar[bool] = False  # honours SamplingParams.constraint

    @property
    @abc.abstractmethod
    def context_length(self) -> int: ...

    @abc.abstractmethod
    def tokenize(self, text: str) -> list[int]:
        """Tokens of a full prompt as it will be fed (including BOS where the model adds one)."""

    @abc.abstractmethod
    def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        """Apply the model's chat template to ``[{"role", "content"}]`` and open the assistant turn."""

    def chat_stop_sequences(self) -> tuple[str, ...]:
        """Strings that end an assistant turn under this model's template (beyond EOS/EOG tokens).

        A template with real end-of-turn tokens needs none; a plain-text template needs the
        next speaker's prefix, or the model writes the user's next line too.
        """
        return ()

    @abc.abstractmethod
    def generate(self, prompt: list[int], params: SamplingParams) -> AsyncGenerator[GenerationEvent, None]:
        """Stream text deltas then exactly one ``GenerationDone`` (implement as an async generator).

        Errors (``Overloaded``, ``ContextLengthExceeded``) surface on the first ``__anext__``.

        Closing the iterator early (client gone) cancels the sequence and frees its capacity.
        Raises ``Overloaded`` at once when the waiting queue is full.
        """


class EmbeddingEngine(Engine):
    kind = ModelKind.EMBEDDING

    @abc.abstractmethod
    async def embed(self, texts: list[str]) -> Embeddings: ...


class ClassifierEngine(Engine):
    kind = ModelKind.IMAGE_CLASSIFICATION

    @abc.abstractmethod
    async def classify(self, image: Image.Image, top_k: int) -> list[Prediction]: ...
