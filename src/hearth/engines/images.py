"""Decode untrusted image bytes into an RGB ``PIL.Image``, mapping every failure to ``InvalidImage``.

Decoding happens at the boundary (the route), so engines only ever see a fully loaded RGB image.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from hearth.errors import InvalidImage, Subject


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """Decode ``data`` fully and return an RGB image.

    Raises ``InvalidImage`` for empty input, unknown formats, truncated or corrupt files, and
    images with more than ``max_pixels`` pixels (decompression bombs).
    """
    if not data:
        raise InvalidImage("the image is empty", subject=Subject.IMAGE)
    try:
        with warnings.catch_warnings():
            # PIL only warns between MAX_IMAGE_PIXELS and twice that; we apply our own limit below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        # The header gives the size before any pixel is decoded, so check it before ``load()``.
        width, height = image.size
        if width <= 0 or height <= 0:
            raise InvalidImage("the image has no pixels", subject=Subject.IMAGE)
        if width * height > max_pixels:
            raise InvalidImage(
                f"the image is too large: {width}x{height} pixels, the limit is {max_pixels}",
                subject=Subject.IMAGE,
            )
        # Lazy decoding would hide truncation until later; ``load()`` forces it here.
        image.load()
        return image if image.mode == "RGB" else _to_rgb(image)
    except InvalidImage:
        raise
    except UnidentifiedImageError as exc:
        raise InvalidImage("the data is not an image in a supported format", subject=Subject.IMAGE) from exc
    except Image.DecompressionBombError as exc:
        raise InvalidImage(f"the image is too large: {exc}", subject=Subject.IMAGE) from exc
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        # OSError covers "image file is truncated" and broken data streams; the others come from
        # malformed headers in various PIL plugins.
        raise InvalidImage(f"the image could not be decoded: {exc}", subject=Subject.IMAGE) from exc


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert to RGB, compositing transparency onto white rather than black."""
    if image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
