"""Typed Python clients for Hearth and other OpenAI-compatible servers.

    from hearth.clients import HearthClient

    with HearthClient() as client:  # HEARTH_BASE_URL / HEARTH_API_KEY, or arguments
        print(client.chat("Say hi", model="gemma-3-270m", max_tokens=20).text)
        stream = client.chat_stream("Count to five", model="gemma-3-270m")
        for delta in stream:
            print(delta, end="", flush=True)
        print(stream.usage, stream.finish_reason)

``AsyncHearthClient`` has the same methods, awaited; its streams are ``async for``-iterated.
"""

from hearth.clients.aio import AsyncHearthClient
from hearth.clients.errors import (
    AuthenticationError,
    BadRequestError,
    ConnectionFailed,
    HearthAPIError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from hearth.clients.streaming import AsyncChatStream, ChatStream
from hearth.clients.sync import HearthClient
from hearth.clients.types import (
    ChatCompletion,
    Classification,
    Completion,
    Embeddings,
    GenerationParams,
    Model,
    Prediction,
    Usage,
    UsageReport,
)

__all__ = [
    "AsyncChatStream",
    "AsyncHearthClient",
    "AuthenticationError",
    "BadRequestError",
    "ChatCompletion",
    "ChatStream",
    "Classification",
    "Completion",
    "ConnectionFailed",
    "Embeddings",
    "GenerationParams",
    "HearthAPIError",
    "HearthClient",
    "Model",
    "NotFoundError",
    "PermissionDeniedError",
    "Prediction",
    "RateLimitError",
    "ServerError",
    "Usage",
    "UsageReport",
]
