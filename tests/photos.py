"""Real photos for tests, from scikit-image's bundled samples, encoded on demand."""

from __future__ import annotations

import io
import struct
import zlib
from functools import cache

import numpy as np
import skimage.data
from PIL import Image

PHOTO_NAMES = ("coffee", "chelsea", "astronaut", "rocket", "immunohistochemistry", "camera")


@cache
def photo_array(name: str = "coffee") -> np.ndarray:
    return getattr(skimage.data, name)()


def photo(name: str = "coffee", *, size: tuple[int, int] | None = None) -> Image.Image:
    image = Image.fromarray(photo_array(name))
    return image.resize(size, Image.Resampling.LANCZOS) if size else image


def encode(image: Image.Image, image_format: str = "JPEG", **params) -> bytes:
    out = io.BytesIO()
    if image_format == "JPEG" and image.mode not in ("RGB", "L", "CMYK"):
        image = image.convert("RGB")
    image.save(out, format=image_format, **params)
    return out.getvalue()


def jpeg(name: str = "coffee", *, size: tuple[int, int] | None = None, quality: int = 90) -> bytes:
    return encode(photo(name, size=size), "JPEG", quality=quality)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width × height: a decompression bomb's calling card."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@cache
def slow_photo() -> bytes:
    """A 49-megapixel PNG (1 MB): decoding it keeps a worker busy for about half a second, long
    enough to be killed mid-job (a JPEG decodes reduced, far faster)."""
    out = io.BytesIO()
    photo("coffee").resize((7000, 7000), Image.Resampling.NEAREST).save(out, format="PNG")
    return out.getvalue()
