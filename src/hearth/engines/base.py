"""Engine interfaces: one abstract class per capability, with capability flags.

An engine owns a loaded model and runs inference off the event loop (in its own threads), so
routes only ``await``. Engines never see HTTP: they take plain dataclasses and raise
``hearth.errors`` exceptions.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from hearth.config import ModelKind, ModelSpec
from hearth.engines.context import EngineContext
from hearth.engines.fair_queue import Ticket
from hearth.engines.weights import parameters_of, weights_in
from hearth.errors import ContextLengthExceeded, InvalidRequest, Subject, Unsupported
from hearth.inference.events import GenerationDone, GenerationEvent, Prediction, TextDelta, UpstreamEvent
from hearth.inference.speech import AudioInfo, SpeakRequest, SpeechAudio, TranscribeRequest, TranscriptSegment
from hearth.inference.types import ChatRequest, CompletionRequest, Message, Tool

if TYPE_CHECKING:  # numpy and PIL load with the engines that use them, not with this module
    import numpy as np
    from PIL import Image

    from hearth.engines.constraints import Constraint

__all__ = ["GenerationDone", "GenerationEvent", "Prediction", "TextDelta"]


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


@dataclass
class ModelFootprint:
    """A configured model before it is loaded: its files, size and the memory it will take."""

    id: str
    kind: str
    backend: str
    file_bytes: int | None = None
    parameters: int | None = None
    quantization: str | None = None
    context_length: int | None = None
    memory_bytes: int | None = None  # estimated resident memory when serving
    fits: bool | None = None
    note: str = ""
    files: list[str] = field(default_factory=list)


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
    kv_cache_usage: float | None = None  # the share of KV cells running sequences hold (0 to 1)


@dataclass(frozen=True)
class SamplingParams:
    """Sampling resolved for one engine call: every default filled in, max_tokens decided."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: off
    min_p: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repeat_penalty: float = 1.0
    logit_bias: Mapping[int, float] = field(default_factory=dict)
    # What the output must match (a JSON schema, a grammar, tool calls); built and checked by
    # hearth.engines.constraints. A complete match ends the generation with "stop".
    constraint: Constraint | None = None
    # OpenAI's prompt_cache_key: a hint that calls sharing it share cached prompts (scheduler.py).
    cache_key: str | None = None
    # Whose work this is and how urgent, for fair admission under overload (fair_queue.py).
    ticket: Ticket = field(default_factory=Ticket)


@dataclass(frozen=True)
class Embeddings:
    vectors: np.ndarray  # shape (n, dim), float32
    token_counts: list[int]


@dataclass(frozen=True)
class PairScores:
    scores: list[float]  # each (query, document) pair's relevance, higher is more relevant
    token_counts: list[int]  # the tokens each pair was read as


class Engine(abc.ABC):
    """A loaded model. ``load`` is blocking and runs once at startup, in a worker thread."""

    kind: ClassVar[ModelKind]
    # The model class this engine runs in the torch worker process ("module:Class"), if any:
    # its ``prepare()`` imports what the model needs, so ``hearth serve`` starts that at once.
    worker_model: ClassVar[str | None] = None

    def __init__(self, spec: ModelSpec, context: EngineContext) -> None:
        self.spec = spec
        self.context = context

    @property
    def data_dir(self) -> Path:
        return self.context.data_dir

    @abc.abstractmethod
    def load(self) -> None: ...

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Once loaded, on the event loop: start background work (an upstream's health checks)."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Before ``close``, on the event loop: stop background work, close connections."""

    def failure(self) -> str | None:
        """Why a loaded engine can't serve now (e.g. its worker process died), or None."""
        return None

    @classmethod
    def weight_files(cls, spec: ModelSpec, data_dir: Path) -> list[Path]:
        """The files holding a model's weights: the source file, or the weights in a directory."""
        path = Path(spec.source).expanduser()
        return weights_in(path) if path.is_dir() else [path]

    @classmethod
    def footprint(cls, spec: ModelSpec, data_dir: Path) -> ModelFootprint:
        """Size, parameters and serving memory, from file headers only (``hearth doctor``)."""
        weights = cls.weight_files(spec, data_dir)
        size = sum(w.stat().st_size for w in weights)
        return ModelFootprint(
            spec.id,
            spec.kind.value,
            spec.backend,
            file_bytes=size,
            parameters=sum(c for c in map(parameters_of, weights) if c) or None,
            memory_bytes=int(size * 1.3) + 64 * 2**20,  # float32 weights + activations
            note="float32 weights + activations",
            files=[str(w) for w in weights],
        )

    @abc.abstractmethod
    def info(self) -> ModelInfo: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release threads and native memory."""

    def activity(self) -> EngineActivity:
        """Queue and batching counters; engines without a queue report nothing."""
        return EngineActivity()

    def status(self) -> dict[str, Any]:
        """What operators see beyond the model's state: an upstream's endpoints and their health."""
        return {}


class TextEngine(Engine):
    """Serves chat and completions: a local model fed token ids (``ChatEngine``), or a server
    that takes whole requests (``ConversationEngine``: an upstream engine)."""

    kind = ModelKind.CHAT
    supports_constraints: ClassVar[bool] = False  # honours SamplingParams.constraint

    def extra_capabilities(self) -> list[str]:
        """What this model offers beyond chat and completions (``tools``, ``json``, ...)."""
        return ["tools", "json"] if self.supports_constraints else []


class ConversationEngine(TextEngine):
    """Text generation by another server, which renders, tokenizes and samples itself.

    It gets the neutral request whole (the gateway has resolved sampling defaults and the
    system prompt) and yields ``(choice index, event)`` pairs: text, whole or streamed tool
    calls, one ``GenerationDone`` per choice, and a last ``UsageReport`` with the server's own
    token counts when it gives them. Failures before the first event are the caller's errors
    (and a chance to fall back to another model); later ones end the stream.
    """

    @property
    def context_length(self) -> int | None:
        """The context the server allows, where it says (or the config sets); None: unknown."""
        return self.spec.context_length

    @property
    def supports_images(self) -> bool:
        return bool(self.spec.supports_images)

    def extra_capabilities(self) -> list[str]:
        caps = [] if self.spec.supports_tools is False else ["tools", "json"]
        return [*caps, "vision"] if self.supports_images else caps

    @abc.abstractmethod
    def converse(self, request: ChatRequest) -> AsyncGenerator[UpstreamEvent, None]:
        """Generate the answer to a chat (implement as an async generator)."""

    @abc.abstractmethod
    def complete(self, request: CompletionRequest) -> AsyncGenerator[UpstreamEvent, None]:
        """Continue raw prompts (implement as an async generator)."""

    async def count_tokens(self, request: ChatRequest) -> int:
        """The prompt's tokens as the server counts them; refused where it cannot say."""
        raise Unsupported(f"the model {self.spec.id!r} cannot count tokens", subject=Subject.MODEL)


class ChatEngine(TextEngine):
    """Text generation on a local model: the gateway renders and tokenizes the prompt."""

    @property
    @abc.abstractmethod
    def context_length(self) -> int: ...

    @property
    def n_vocab(self) -> int | None:
        """Vocabulary size, for checking token ids; None when ids need no check."""
        return None

    @abc.abstractmethod
    def tokenize(self, text: str) -> list[int]:
        """Tokens of a full prompt as it will be fed (including BOS where the model adds one)."""

    @abc.abstractmethod
    def render_chat(self, messages: Sequence[Message], tools: Sequence[Tool] = ()) -> str:
        """Apply the model's chat template to text-only ``messages`` and open the assistant turn."""

    @property
    def template_renders_tools(self) -> bool:
        """Whether the chat template lays out tools itself (else the gateway's tool prompt does)."""
        return False

    def chat_stop_sequences(self) -> tuple[str, ...]:
        """Strings that end an assistant turn under this model's template (beyond EOS/EOG tokens).

        A template with real end-of-turn tokens needs none; a plain-text template needs the
        next speaker's prefix, or the model writes the user's next line too.
        """
        return ()

    def validate(self, prompt: Sequence[int], params: SamplingParams) -> None:
        """The one check of a generation against this model; the gateway and ``generate`` call it."""
        ctx = self.context_length
        if not prompt:
            raise InvalidRequest("the prompt is empty", subject=Subject.PROMPT)
        if len(prompt) >= ctx:
            raise ContextLengthExceeded(
                f"this model's maximum context length is {ctx} tokens, but the prompt has "
                f"{len(prompt)} tokens",
                subject=Subject.PROMPT,
            )
        if params.max_tokens < 1:
            raise InvalidRequest("{output_limit} must be at least 1", subject=Subject.OUTPUT_LIMIT)
        if len(prompt) + params.max_tokens > ctx:
            raise ContextLengthExceeded(
                f"this model's maximum context length is {ctx} tokens; the prompt ({len(prompt)} "
                f"tokens) plus {{output_limit}} ({params.max_tokens}) exceeds it. Reduce the prompt or "
                "{output_limit}.",
                subject=Subject.OUTPUT_LIMIT,
            )
        vocab = self.n_vocab
        if vocab is not None:
            if min(prompt) < 0 or max(prompt) >= vocab:
                raise InvalidRequest(f"prompt token ids must be in [0, {vocab})", subject=Subject.PROMPT)
            if any(not 0 <= token < vocab for token in params.logit_bias):
                raise InvalidRequest(
                    f"{{logit_bias}} token ids must be in [0, {vocab})", subject=Subject.LOGIT_BIAS
                )

    @abc.abstractmethod
    def generate(self, prompt: list[int], params: SamplingParams) -> AsyncGenerator[GenerationEvent, None]:
        """Stream text deltas then exactly one ``GenerationDone`` (implement as an async generator).

        Implementations call ``validate`` first. Errors (``Overloaded``,
        ``ContextLengthExceeded``) surface on the first ``__anext__``. Closing the iterator early
        (client gone) cancels the sequence and frees its capacity. Raises ``Overloaded`` at once
        when the waiting queue is full.
        """


class EmbeddingEngine(Engine):
    kind = ModelKind.EMBEDDING

    @abc.abstractmethod
    async def embed(self, texts: list[str], *, truncate: bool = False) -> Embeddings:
        """Unit vectors of ``texts``; over-long texts raise ``ContextLengthExceeded`` unless ``truncate``."""


class RerankEngine(Engine):
    """A cross-encoder: reads a query and a document together and scores their relevance."""

    kind = ModelKind.RERANK

    @abc.abstractmethod
    async def score_pairs(self, pairs: list[tuple[str, str]]) -> PairScores:
        """Each (query, document) pair's relevance; over-long pairs are truncated to the
        model's window (a reranker reads the start of a long document)."""


@dataclass
class Transcription:
    """A transcript under way: what is known of the file, and its segments as they are decoded."""

    info: AudioInfo
    segments: AsyncIterator[TranscriptSegment]


class SpeechEngine(Engine):
    """Speech to text: a transcript, or an English translation, of one audio file."""

    kind = ModelKind.SPEECH_TO_TEXT

    @abc.abstractmethod
    async def transcribe(self, request: TranscribeRequest) -> Transcription:
        """Decode and measure the file (its errors are the caller's, raised here), then yield
        its segments in order; closing the iterator early stops the work."""


class SynthesisEngine(Engine):
    """Text to speech: reads text aloud in one of its voices."""

    kind = ModelKind.TEXT_TO_SPEECH

    @property
    @abc.abstractmethod
    def voices(self) -> tuple[str, ...]:
        """The voices it speaks in, its own first."""

    @abc.abstractmethod
    async def synthesize(self, request: SpeakRequest) -> SpeechAudio:
        """Check the request (its errors are the caller's, raised here), then yield the audio
        sentence by sentence; closing the iterator early stops the work."""


class ClassifierEngine(Engine):
    kind = ModelKind.IMAGE_CLASSIFICATION

    @abc.abstractmethod
    async def classify(self, image: Image.Image, top_k: int) -> list[Prediction]: ...
