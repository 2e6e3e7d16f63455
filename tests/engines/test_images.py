"""decode_image: every way untrusted bytes can fail becomes InvalidImage."""

from __future__ import annotations

import io
import os
import zlib

import pytest
from PIL import Image

from hearth.engines.images import decode_image
from hearth.errors import InvalidImage

LIMIT = 40_000_000


def _encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _noise(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    # Random pixels so that JPEG data is large enough to cut in half meaningfully.
    return Image.frombytes(mode, size, os.urandom(size[0] * size[1] * len(mode)))


def test_decodes_png() -> None:
    image = decode_image(_encode(_noise((64, 48)), "PNG"), LIMIT)
    assert image.mode == "RGB"
    assert image.size == (64, 48)


def test_decodes_jpeg() -> None:
    image = decode_image(_encode(_noise((80, 60)), "JPEG", quality=90), LIMIT)
    assert image.mode == "RGB"
    assert image.size == (80, 60)


def test_converts_grayscale_to_rgb() -> None:
    image = decode_image(_encode(Image.new("L", (10, 10), 128), "PNG"), LIMIT)
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (128, 128, 128)


def test_transparency_becomes_white() -> None:
    image = decode_image(_encode(Image.new("RGBA", (10, 10), (0, 0, 0, 0)), "PNG"), LIMIT)
    assert image.mode == "RGB"
    assert image.getpixel((5, 5)) == (255, 255, 255)


def test_truncated_jpeg_is_invalid() -> None:
    data = _encode(_noise((256, 256)), "JPEG", quality=95)
    with pytest.raises(InvalidImage, match="could not be decoded") as info:
        decode_image(data[: len(data) // 2], LIMIT)
    assert isinstance(info.value.__cause__, OSError)


def test_truncated_png_is_invalid() -> None:
    data = _encode(_noise((128, 128)), "PNG")
    with pytest.raises(InvalidImage):
        decode_image(data[: len(data) // 2], LIMIT)


def test_random_bytes_are_invalid() -> None:
    with pytest.raises(InvalidImage, match="not an image") as info:
        decode_image(os.urandom(4096), LIMIT)
    assert info.value.label == "invalid_image"
    assert info.value.status_code == 400
    assert info.value.__cause__ is not None


def test_empty_input_is_invalid() -> None:
    with pytest.raises(InvalidImage, match="empty"):
        decode_image(b"", LIMIT)


def test_bomb_guard_rejects_before_decoding() -> None:
    data = _encode(Image.new("RGB", (200, 100)), "PNG")
    with pytest.raises(InvalidImage, match="too large"):
        decode_image(data, max_pixels=200 * 100 - 1)
    assert decode_image(data, max_pixels=200 * 100).size == (200, 100)


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width x height`` pixels (a decompression-bomb header)."""
    data = bytearray(_encode(Image.new("1", (1, 1)), "PNG"))
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")  # IHDR width, height
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # keep the IHDR checksum valid
    return bytes(data)


def test_bomb_header_is_rejected_by_size_not_by_decoding() -> None:
    # 100 M pixels: past PIL's warning threshold but under its hard limit, so our check decides.
    with pytest.raises(InvalidImage, match="too large: 10000x10000"):
        decode_image(_png_claiming(10_000, 10_000), LIMIT)


def test_bomb_past_pil_limit_is_invalid() -> None:
    # 400 M pixels: PIL itself refuses in ``open``; that must still surface as InvalidImage.
    with pytest.raises(InvalidImage, match="too large") as info:
        decode_image(_png_claiming(20_000, 20_000), max_pixels=10**12)
    assert isinstance(info.value.__cause__, Image.DecompressionBombError)
