"""Test images: small generated ones, and scikit-image's real photos."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image


def png_bytes(color: tuple[int, int, int] = (200, 100, 50)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(buffer, format="PNG")
    return buffer.getvalue()


def chelsea() -> Path:
    """A real photo of a tabby cat."""
    import skimage.data

    return Path(skimage.data.__file__).parent / "chelsea.png"
