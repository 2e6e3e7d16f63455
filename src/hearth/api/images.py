"""Images as API families send them (data URLs, bare base64, URLs), parsed into ``ImagePart``.

Only the wire format is handled here; decoding the pixels and every size check happen in the
gateway, once for all families.
"""

from __future__ import annotations

import base64
import binascii

from hearth.errors import InvalidImage
from hearth.inference.types import ImagePart


def decode_base64(value: str, param: str) -> bytes:
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImage("the image is not valid base64", param=param) from exc


def image_from_url(url: str, param: str) -> ImagePart:
    """A ``data:`` URL becomes bytes; an ``http(s)`` URL is kept for the gateway to fetch or refuse."""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header.removeprefix("data:").split(";")[0] or None
        if ";base64" not in header:
            raise InvalidImage("image data URLs must be base64 (data:image/png;base64,...)", param=param)
        return ImagePart(data=decode_base64(data, param), media_type=media_type, origin=param)
    if url.startswith(("http://", "https://")):
        return ImagePart(url=url, origin=param)
    raise InvalidImage("an image URL must be a data: URL or an http(s) URL", param=param)


def image_from_base64(data: str, param: str, media_type: str | None = None) -> ImagePart:
    """Bare base64 (Anthropic's ``source.data``, Ollama's ``images``), or a data: URL sent as such."""
    if data.startswith("data:"):
        return image_from_url(data, param)
    return ImagePart(data=decode_base64(data, param), media_type=media_type, origin=param)
