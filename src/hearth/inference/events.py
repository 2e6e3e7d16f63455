"""What comes back: generation events, usage, and the results of the other capabilities.

Engines emit ``TextDelta`` and one ``GenerationDone`` per sequence. The gateway streams
``ChoiceEvent`` pairs ``(choice index, event)``, and adds ``ToolCallDelta`` when it turns
constrained text into tool calls. Every family's renderer works from these alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from hearth.inference.types import ToolCall

if TYPE_CHECKING:
    import numpy as np

FinishReason = Literal["stop", "length", "tool_calls"]


CHARS_PER_TOKEN = 3  # a cautious estimate (most tokenizers give 3.5-4.5 for English text)


def estimated_tokens(chars: int) -> int:
    """Tokens in ``chars`` characters, where no tokenizer counted them (rounded up)."""
    return -(-chars // CHARS_PER_TOKEN)


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of generated text. ``text`` may be empty while a stop string is still undecided."""

    text: str
    tokens: int = 1
    # On a choice's first piece, where the engine knows it: its prompt tokens read from the
    # cache (so an answer's start, Anthropic's message_start, can already count them).
    cached_tokens: int | None = None
    queued_s: float | None = None  # ... and how long it waited for the engine (traces)


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """Part of a tool call: the first delta of a call has its id and name, later ones arguments."""

    call_index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None
    tokens: int = 0


@dataclass(frozen=True, slots=True)
class GenerationDone:
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    stop_sequence: str | None = None  # the caller's stop string that ended it, if one did


@dataclass(frozen=True, slots=True)
class UsageReport:
    """An upstream server's own count of what a whole request used (every choice together): it
    replaces Hearth's running count, so the ledger records the server's numbers."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    cache_write_tokens: int = 0


GenerationEvent = TextDelta | GenerationDone
ChoiceEvent = TextDelta | ToolCallDelta | GenerationDone
# What an upstream engine yields: a choice's event, or (last) the server's usage.
UpstreamEvent = tuple[int, ChoiceEvent] | UsageReport


def add_call_delta(calls: list[ToolCall], delta: ToolCallDelta) -> None:
    """Fold one streamed piece of a tool call into the whole calls gathered so far."""
    if delta.call_index >= len(calls):
        calls.append(ToolCall(delta.id or "", delta.name or "", delta.arguments))
        return
    call = calls[delta.call_index]
    calls[delta.call_index] = ToolCall(call.id, call.name, call.arguments + delta.arguments)


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # of the prompt, read from the cache
    # Of the prompt, computed and kept up to the caller's cache breakpoint, for this long.
    cache_write_tokens: int = 0
    cache_write_ttl_s: float = 300.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class ChoiceResult:
    """One whole choice, for the non-streaming answers."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    stop_sequence: str | None = None


@dataclass(frozen=True, slots=True)
class Prediction:
    label: str
    confidence: float
    index: int


@dataclass(frozen=True)
class EmbedResult:
    model: str  # the id of the model that served it
    vectors: np.ndarray  # (n, dim) float32, L2-normalised
    token_counts: list[int]

    @property
    def dimensions(self) -> int:
        return int(self.vectors.shape[1])


@dataclass(frozen=True)
class ClassifyResult:
    model: str
    predictions: list[Prediction]
