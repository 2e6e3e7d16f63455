"""Images in chat, for text-only chat models: an image classifier describes them.

This is a pipeline, not a vision-language model: each image is classified (ImageNet-1k labels
with the default models) and the chat model reads the top labels as text in place of the image.
It is what the chat model's ``image_model`` names, and what ``/v1/models`` calls the
``vision:classifier-labels`` capability. A model without one refuses images with a 400.

Images arrive as bytes (data URLs, base64) or as http(s) URLs, which are fetched only when
``fetch_image_urls`` is on, within a size and a time limit.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

import httpx

from hearth.config import Settings
from hearth.engines.base import ClassifierEngine, ConversationEngine, TextEngine
from hearth.engines.images import decode_image
from hearth.errors import InvalidImage, InvalidRequest, Subject
from hearth.gateway.resolver import Resolver
from hearth.inference.events import Prediction
from hearth.inference.types import ImagePart, Message, Part, TextPart

TOP_LABELS = 3


async def image_bytes(image: ImagePart, settings: Settings) -> bytes:
    if image.data is not None:
        return image.data
    if not image.url:
        raise InvalidImage("the image has neither data nor a URL", subject=Subject.IMAGES, param=image.origin)
    if not settings.fetch_image_urls:
        raise InvalidRequest(
            "image URLs are not fetched by this server (fetch_image_urls is off): send the image as a "
            "data: URL or base64",
            reason="image_url_not_allowed",
            subject=Subject.IMAGES,
            param=image.origin,
        )
    limit = settings.max_image_fetch_bytes
    try:
        async with (
            httpx.AsyncClient(timeout=settings.image_fetch_timeout_s, follow_redirects=True) as client,
            client.stream("GET", image.url) as reply,
        ):
            if reply.status_code != 200:
                raise InvalidImage(
                    f"fetching the image URL gave HTTP {reply.status_code}",
                    subject=Subject.IMAGES,
                    param=image.origin,
                )
            chunks, seen = [], 0
            async for chunk in reply.aiter_bytes():
                seen += len(chunk)
                if seen > limit:
                    raise InvalidImage(
                        f"the image at the URL is larger than {limit} bytes",
                        subject=Subject.IMAGES,
                        param=image.origin,
                    )
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise InvalidImage(
            f"the image URL could not be fetched: {type(exc).__name__}",
            subject=Subject.IMAGES,
            param=image.origin,
        ) from exc
    return b"".join(chunks)


def describe(model_id: str, predictions: Sequence[Prediction]) -> str:
    labels = ", ".join(f"{p.label} ({p.confidence:.0%})" for p in predictions)
    return (
        f"[An image is attached. You cannot see it, but an image classifier ({model_id}) labels it: "
        f"{labels}.]"
    )


async def describe_images(
    messages: Sequence[Message], classifier: ClassifierEngine, settings: Settings
) -> tuple[list[Message], int]:
    """The messages with every image replaced by the classifier's labels, and how many there were."""
    out: list[Message] = []
    count = 0
    for message in messages:
        if not message.images:
            out.append(message)
            continue
        parts: list[Part] = []
        for part in message.parts:
            if not isinstance(part, ImagePart):
                parts.append(part)
                continue
            data = await image_bytes(part, settings)
            try:
                image = await asyncio.to_thread(decode_image, data, settings.max_image_pixels)
            except InvalidImage as exc:  # an image inside the prompt, not the route's one image
                raise InvalidImage(exc.message, subject=Subject.IMAGES, param=part.origin) from exc
            predictions = await classifier.classify(image, TOP_LABELS)
            parts.append(TextPart(describe(classifier.spec.id, predictions)))
            count += 1
        out.append(dataclasses.replace(message, parts=tuple(parts)))
    return out, count


async def readable(
    engine: TextEngine, messages: Sequence[Message], resolver: Resolver, settings: Settings
) -> tuple[Sequence[Message], int]:
    """The conversation as the model reads it, and how many images were described: images in
    the labels of its image model (or a 400; an upstream that takes images gets them as they
    are), then the model's configured system prompt when the conversation brings none."""
    described = 0
    first = next((m for m in messages if m.images), None)
    if first is not None and not (isinstance(engine, ConversationEngine) and engine.supports_images):
        if engine.spec.image_model is None:
            raise InvalidRequest(
                "this model does not accept images; use an image model or /v1/classify",
                subject=Subject.IMAGES,
                param=None if first.origin is None else f"{first.origin}.content",
                reason="unsupported_content",
            )
        entry, classifier = await resolver.held(engine.spec.image_model, ClassifierEngine)
        try:
            messages, described = await describe_images(messages, classifier, settings)
        finally:
            resolver.give_back(entry)
    prompt = engine.spec.system_prompt
    if prompt is None or any(m.role == "system" for m in messages):
        return messages, described
    return [Message.of("system", prompt), *messages], described
