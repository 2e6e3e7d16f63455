"""Each API call as a sans-I/O generator: it yields ``httpx.Request``s and receives responses.

The sync and async clients only differ in how they send a request, so they share every line here:
request bodies, image loading (a URL is downloaded client-side, without the API key), and
parsing results or errors.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
from collections.abc import Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ValidationError

from hearth.clients._config import Endpoint
from hearth.clients.errors import HearthAPIError, ServerError, error_from_event, error_from_response
from hearth.clients.types import (
    ChatCompletion,
    Classification,
    Completion,
    Embeddings,
    Messages,
    Model,
    UsageReport,
)

T = TypeVar("T")
R = TypeVar("R", bound=BaseModel)
Op = Generator[httpx.Request, httpx.Response, T]
ImageSource = str | os.PathLike[str] | bytes


def check(response: httpx.Response) -> httpx.Response:
    """The response itself if it succeeded, else its typed error (the body must have been read)."""
    if response.is_success:
        return response
    raise error_from_response(response)


def parse(response: httpx.Response, model: type[R]) -> R:
    try:
        return model.model_validate(check(response).json())
    except (ValueError, ValidationError) as exc:  # json.JSONDecodeError is a ValueError
        raise ServerError(
            f"the server's answer is not a valid {model.__name__}: {exc}", status=response.status_code
        ) from exc


def messages_of(messages: Messages) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return [dict(m) for m in messages]


def chat_body(model: str, messages: Messages, stream: bool, params: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI chat body; ``None`` parameters are left out, so the server's defaults apply."""
    body = {"model": model, "messages": messages_of(messages), **_given(params)}
    if stream:
        body["stream"] = True
        body.setdefault("stream_options", {"include_usage": True})
    return body


def completion_body(
    model: str, prompt: str | Sequence[str], stream: bool, params: Mapping[str, Any]
) -> dict[str, Any]:
    body = {"model": model, "prompt": prompt if isinstance(prompt, str) else list(prompt), **_given(params)}
    if stream:
        body["stream"] = True
        body.setdefault("stream_options", {"include_usage": True})
    return body


def _given(params: Mapping[str, Any]) -> dict[str, Any]:
    given = {k: v for k, v in params.items() if v is not None and k != "extra_body"}
    return {**given, **(params.get("extra_body") or {})}


# --- operations ---------------------------------------------------------------------------------


def chat(ep: Endpoint, model: str, messages: Messages, params: Mapping[str, Any]) -> Op[ChatCompletion]:
    response = yield ep.request("POST", "chat/completions", json=chat_body(model, messages, False, params))
    return parse(response, ChatCompletion)


def complete(
    ep: Endpoint, model: str, prompt: str | Sequence[str], params: Mapping[str, Any]
) -> Op[Completion]:
    body = completion_body(model, prompt, False, params)
    response = yield ep.request("POST", "completions", json=body)
    return parse(response, Completion)


def embed(ep: Endpoint, model: str, texts: str | Sequence[str], params: Mapping[str, Any]) -> Op[Embeddings]:
    body = {"model": model, "input": texts if isinstance(texts, str) else list(texts), **_given(params)}
    body["encoding_format"] = "float"
    response = yield ep.request("POST", "embeddings", json=body)
    return parse(response, Embeddings)


def classify(ep: Endpoint, image: ImageSource, model: str | None, top_k: int) -> Op[Classification]:
    data, name, mime = yield from load_image(image)
    fields = {"top_k": str(top_k), **({"model": model} if model else {})}
    request = ep.request("POST", "classify", files={"image": (name, data, mime)}, data=fields)
    response = yield request
    return parse(response, Classification)


def transcription(
    ep: Endpoint, audio: Path, *, model: str | None, language: str | None, translate: bool
) -> httpx.Request:
    """A streamed transcription (or translation to English) of an audio file, as OpenAI's route takes it."""
    fields = {"model": model or "whisper-1", "stream": "false" if translate else "true"}
    if language and not translate:
        fields["language"] = language
    route = "audio/translations" if translate else "audio/transcriptions"
    return ep.request("POST", route, files={"file": (audio.name, audio.read_bytes())}, data=fields)


def transcript_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The events of a transcription stream; an error event raises it."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        try:
            event: Any = json.loads(line[5:].strip())
        except ValueError as exc:
            raise ServerError(f"the stream sent an invalid event: {line[:200]!r}") from exc
        if isinstance(event, dict) and event.get("error") is not None:
            raise error_from_event(event)
        if isinstance(event, dict):
            yield event


def image_part(image: ImageSource) -> Op[dict[str, Any]]:
    """An OpenAI ``image_url`` content part holding the image inline, as a data URL."""
    data, _, mime = yield from load_image(image)
    url = f"data:{mime};base64,{base64.b64encode(data).decode()}"
    return {"type": "image_url", "image_url": {"url": url}}


def usage(ep: Endpoint) -> Op[UsageReport]:
    response = yield ep.request("GET", "usage")
    return parse(response, UsageReport)


def list_models(ep: Endpoint) -> Op[list[Model]]:
    response = yield ep.request("GET", "models")
    body = check(response).json()
    data = body.get("data", []) if isinstance(body, dict) else body
    try:
        return [Model.model_validate(m) for m in data]
    except ValidationError as exc:
        raise ServerError(
            f"the server's model list is not valid: {exc}", status=response.status_code
        ) from exc


def get_model(ep: Endpoint, model_id: str) -> Op[Model]:
    response = yield ep.request("GET", f"models/{quote(model_id, safe='')}")
    return parse(response, Model)


# --- images -------------------------------------------------------------------------------------


def is_url(image: ImageSource) -> bool:
    return isinstance(image, str) and image.startswith(("http://", "https://"))


def load_image(image: ImageSource) -> Op[tuple[bytes, str, str]]:
    """``(bytes, file name, MIME type)`` for a path, raw bytes, or an http(s) URL (downloaded)."""
    if isinstance(image, bytes):
        return image, "image", "application/octet-stream"
    if isinstance(image, str) and is_url(image):
        response = yield httpx.Request("GET", image, headers={"Accept": "image/*"})
        if not response.is_success:
            raise HearthAPIError(
                f"could not download the image {image}: HTTP {response.status_code}",
                status=response.status_code,
                type="image_error",
            )
        name = Path(urlsplit(image).path).name or "image"
        mime = response.headers.get("content-type", "").split(";")[0] or _guess(name)
        return response.content, name, mime
    path = Path(image)
    try:
        return path.read_bytes(), path.name, _guess(path.name)
    except OSError as exc:
        raise HearthAPIError(
            f"could not read the image {path}: {exc.strerror or exc}", type="image_error"
        ) from exc


def _guess(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"
