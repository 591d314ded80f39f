"""Small pure-Pillow helpers the dataset services need: fingerprints and thumbnails."""

from __future__ import annotations

import hashlib
import io

from PIL import Image

from coffeeclassifier.imaging import shrunk_if_huge, to_upright_rgb

HASH_SIDE = 8


def content_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def difference_hash(image: Image.Image) -> str:
    """64-bit dHash as 16 hex digits: survives resizing and re-encoding, unlike sha256."""
    small = image.convert("L").resize((HASH_SIDE + 1, HASH_SIDE), Image.Resampling.LANCZOS)
    pixels = small.tobytes()
    bits = 0
    for row in range(HASH_SIDE):
        offset = row * (HASH_SIDE + 1)
        for column in range(HASH_SIDE):
            bits = (bits << 1) | (pixels[offset + column] > pixels[offset + column + 1])
    return f"{bits:016x}"


def thumbnail_jpeg(data: bytes, *, side: int) -> bytes:
    """A JPEG whose longer side is at most `side`, upright, decoded cheaply where JPEG allows."""
    image = Image.open(io.BytesIO(data))
    image.draft("RGB", (side, side))
    image = to_upright_rgb(shrunk_if_huge(image))  # a shrunk copy lets the huge original go
    image.thumbnail((side, side), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def small_upright(data: bytes, *, side: int) -> Image.Image:
    """The image as upright RGB within `side`, decoded cheaply: a JPEG at a fraction of its size,
    and never a whole canvas converted (seconds and a gigabyte for a tiny GIF that declares a
    huge one). The perceptual hash is taken from it."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (side, side))
        image.load()
        image.thumbnail((side, side), reducing_gap=None)
        return to_upright_rgb(image)
