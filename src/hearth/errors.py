"""Every error Hearth reports to a client, in one hierarchy, in neutral words.

Library errors (llama.cpp, PIL, SQLAlchemy, redis) are mapped to these at the boundary where
they occur (``raise ... from exc``), so the API layer renders exactly one kind of exception:

    HearthError                      500 internal
    ├── InvalidRequest               400 invalid_request
    │   ├── ContextLengthExceeded    400 context_length_exceeded
    │   ├── InvalidImage             400 invalid_image
    │   └── Unsupported              400 unsupported (known, but not honoured)
    ├── AuthenticationFailed         401 authentication
    ├── PermissionDenied             403 permission
    ├── NotFound                     404 not_found
    │   └── ModelNotFound            404 model_not_found (+ the names the caller may use)
    ├── PayloadTooLarge              413 request_too_large
    ├── RateLimited                  429 rate_limited (+ Retry-After, limits)
    │   └── QuotaExceeded            429 quota_exceeded
    ├── Overloaded                   503 overloaded (+ Retry-After)
    │   ├── NotReady                 503 not_ready
    │   └── UpstreamUnavailable      503 overloaded: no endpoint of an upstream model can take it
    └── EngineFailure                500 engine_failure
        └── UpstreamFailure          502 engine_failure: an upstream server failed or answered wrong

The core speaks of the request in its own terms: an error says which ``Subject`` of the request
it is about (the prompt, the output limit, the output format ...), and its message writes that
subject as a placeholder such as ``{output_limit}``. Each API family's adapter renders the
error in its own shape and words: ``{output_limit}`` becomes ``max_tokens`` for OpenAI chat,
``max_output_tokens`` for the Responses API and ``options.num_predict`` for Ollama, and the
subject becomes the family's ``param``. A family mapper that knows the exact field (a tool's
schema at ``tools[2].function.parameters``) passes it as ``param``, in its own words already.
``reason`` is a finer machine-readable cause than the kind, in Hearth's words; the families map
kinds to their own codes. An operator's config (models, rollout routes, keys) is named by its own
keys (``id``, ``variants``, ``rpm``), which are Hearth's words in the YAML and the admin API alike.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum


class ErrorKind(StrEnum):
    INTERNAL = "internal"
    INVALID_REQUEST = "invalid_request"
    CONTEXT_LENGTH = "context_length_exceeded"
    INVALID_IMAGE = "invalid_image"
    UNSUPPORTED = "unsupported"
    AUTHENTICATION = "authentication"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    MODEL_NOT_FOUND = "model_not_found"
    TOO_LARGE = "request_too_large"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"
    OVERLOADED = "overloaded"
    NOT_READY = "not_ready"
    ENGINE_FAILURE = "engine_failure"


class Subject(StrEnum):
    """The parts of a request the core can find fault with, named in no family's words."""

    MODEL = "model"
    PROMPT = "prompt"  # the conversation, or the prompt text
    OUTPUT_LIMIT = "output_limit"  # the most tokens to generate
    OUTPUT_FORMAT = "output_format"  # JSON of any shape, or JSON valid against a schema
    CONTEXT_WINDOW = "context_window"  # a per-request context size (Ollama's num_ctx)
    TOOLS = "tools"
    TOOL_CHOICE = "tool_choice"
    LOGIT_BIAS = "logit_bias"
    IMAGES = "images"  # images inside the prompt
    IMAGE = "image"  # the one image of a classification
    INPUT = "input"  # the texts to embed
    DIMENSIONS = "dimensions"
    STORE = "store"
    RESPONSE = "response"  # a stored response named by id
    PREVIOUS_RESPONSE = "previous_response"  # the stored response a new one continues
    CHOICES = "choices"  # how many answers to generate


# How a message names a subject when no family has a word for it.
PLAIN_WORDS: Mapping[Subject, str] = {
    Subject.MODEL: "the model",
    Subject.PROMPT: "the prompt",
    Subject.OUTPUT_LIMIT: "the output limit",
    Subject.OUTPUT_FORMAT: "the output format",
    Subject.CONTEXT_WINDOW: "the context window",
    Subject.TOOLS: "the tools",
    Subject.TOOL_CHOICE: "the tool choice",
    Subject.LOGIT_BIAS: "the logit bias",
    Subject.IMAGES: "the images",
    Subject.IMAGE: "the image",
    Subject.INPUT: "the input",
    Subject.DIMENSIONS: "the dimensions",
    Subject.STORE: "store",
    Subject.RESPONSE: "the response id",
    Subject.PREVIOUS_RESPONSE: "the previous response id",
    Subject.CHOICES: "the number of choices",
}
_PLACEHOLDER = re.compile(r"\{(" + "|".join(s.value for s in Subject) + r")\}")


def in_words(text: str, names: Mapping[Subject, str]) -> str:
    """``text`` with each ``{subject}`` placeholder written as ``names`` (else plain words) say."""
    return _PLACEHOLDER.sub(lambda m: names.get(Subject(m[1])) or PLAIN_WORDS[Subject(m[1])], text)


@dataclass(frozen=True, slots=True)
class RateLimitState:
    """A key's windows as numbers; each family formats its own headers from them."""

    requests_limit: int | None = None
    requests_remaining: int | None = None
    requests_reset_s: float | None = None  # seconds from now until the window resets
    tokens_limit: int | None = None
    tokens_remaining: int | None = None
    tokens_reset_s: float | None = None

    def merge(self, other: RateLimitState) -> RateLimitState:
        """These numbers, with every value ``other`` knows taking precedence."""
        known = {k: v for k, v in dataclasses.asdict(other).items() if v is not None}
        return dataclasses.replace(self, **known)


class HearthError(Exception):
    status_code: int = 500
    kind: ErrorKind = ErrorKind.INTERNAL
    reason: str | None = None  # a finer cause than ``kind``, in Hearth's words

    def __init__(
        self,
        message: str,
        *,
        subject: Subject | None = None,
        param: str | None = None,
        reason: str | None = None,
        retry_after: float | None = None,
        limits: RateLimitState | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message  # may hold ``{subject}`` placeholders: render with ``in_words``
        self.subject = subject
        self.param = param  # the exact request field, in the family's words (from its mapper)
        if reason is not None:
            self.reason = reason
        self.retry_after = retry_after
        self.limits = limits

    @property
    def label(self) -> str:
        """What the usage row and the metrics record: the reason, else the kind."""
        return self.reason or self.kind.value

    @property
    def retry_after_header(self) -> str | None:
        """``Retry-After`` in whole seconds, rounded up, at least 1."""
        if self.retry_after is None:
            return None
        return str(max(1, round(self.retry_after + 0.499)))


class InvalidRequest(HearthError):
    status_code = 400
    kind = ErrorKind.INVALID_REQUEST


class ContextLengthExceeded(InvalidRequest):
    kind = ErrorKind.CONTEXT_LENGTH


class InvalidImage(InvalidRequest):
    kind = ErrorKind.INVALID_IMAGE


class Unsupported(InvalidRequest):
    kind = ErrorKind.UNSUPPORTED


class AuthenticationFailed(HearthError):
    status_code = 401
    kind = ErrorKind.AUTHENTICATION


class PermissionDenied(HearthError):
    status_code = 403
    kind = ErrorKind.PERMISSION


class NotFound(HearthError):
    status_code = 404
    kind = ErrorKind.NOT_FOUND


class ModelNotFound(NotFound):
    """An unknown model; ``name`` as the caller asked, ``usable`` the names it may use instead."""

    kind = ErrorKind.MODEL_NOT_FOUND

    def __init__(self, name: str, usable: Sequence[str] | None = None, *, message: str | None = None) -> None:
        self.name = name
        self.usable = None if usable is None else tuple(usable)
        super().__init__(message or f"the model {name!r} does not exist", subject=Subject.MODEL)

    @property
    def hint(self) -> str | None:
        """What the caller may ask for instead, for the end of the message."""
        if self.usable is None:
            return None
        if not self.usable:
            return "this API key may use no model on this server"
        return "the models you may use: " + ", ".join(self.usable)


class PayloadTooLarge(HearthError):
    status_code = 413
    kind = ErrorKind.TOO_LARGE


class RateLimited(HearthError):
    status_code = 429
    kind = ErrorKind.RATE_LIMITED


class QuotaExceeded(RateLimited):
    kind = ErrorKind.QUOTA_EXCEEDED


class Overloaded(HearthError):
    status_code = 503
    kind = ErrorKind.OVERLOADED


class NotReady(Overloaded):
    kind = ErrorKind.NOT_READY


class EngineFailure(HearthError):
    status_code = 500
    kind = ErrorKind.ENGINE_FAILURE


class UpstreamUnavailable(Overloaded):
    reason = "upstream_unavailable"


class UpstreamFailure(EngineFailure):
    status_code = 502
    reason = "upstream_failure"


def as_hearth_error(exc: BaseException) -> HearthError:
    """Anything that escapes an engine or a stream, as an error a client can be shown."""
    if isinstance(exc, HearthError):
        return exc
    return EngineFailure(f"generation failed: {type(exc).__name__}")
