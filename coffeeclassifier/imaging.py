"""Image bytes to an upright 8-bit RGB picture: the decode that the dataset's validation and the
model's preprocessing (classifier.ml.preprocess) share, so a photo that passes validation is
decoded by workers and trainings exactly as it was checked. Pure Pillow: neither app owns it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import partial

from PIL import Image, ImageOps

# A canvas above this many pixels is shrunk before anything else is done with it: converting it
# at full size costs a worker a second and a gigabyte (an 813-byte GIF can declare 50 megapixels),
# for a model that sees 224 × 224. Photos of common cameras (12 MP) stay below.
LARGE_PIXELS = 16_000_000
LARGE_SIDE = 2048  # the longer side of a shrunk image, unless
SHORT_SIDE = 448  # the shorter would then be less than this (a panorama keeps its height)
REDUCIBLE_MODES = ("L", "LA", "RGB", "RGBA", "CMYK", "YCbCr", "I", "F")  # Image.reduce's, palettes aside
# Transparent pixels are shown on white, as an image viewer would show them.
BACKGROUND = (255, 255, 255)
RESAMPLE = Image.Resampling.BILINEAR
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"
# What libjpeg makes of a block whose data is missing (all its coefficients zero), in every band.
MISSING_DATA_GREY = 128
# Bytes that begin no JPEG marker (none is 0xFF): put before the end marker, libjpeg skips them
# after a finished picture and decodes them as picture data inside an unfinished one.
FILLER = bytes(range(1, 255))


class DataEndsEarly(OSError):
    """A JPEG whose compressed data stops before its picture does, though an end marker follows."""

    def __init__(self):
        super().__init__("its data ends before its picture does, so the rest would be grey")


def to_upright_rgb(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation and convert any mode (CMYK, 16-bit, palette, alpha) to RGB.

    Changes `image` itself where it can (callers pass one they decoded): for an upright RGB photo,
    the two copies Pillow would otherwise make cost nearly half of `decode` here.
    """
    ImageOps.exif_transpose(image, in_place=True)
    if image.mode in SIXTEEN_BIT_MODES:
        # A plain convert clips 16-bit values at 255 and turns the photo white: scale first.
        image = image.point(lambda value: value * (1 / 256)).convert("L")
    elif image.mode == "F":
        image = image.convert("L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode in ("RGB", "L") and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def decode(data: bytes, *, at_least: int | None = None) -> Image.Image:
    """Bytes to an upright RGB image (raises Pillow's errors on bad data).

    With `at_least`, a JPEG decodes at 1/2, 1/4 or 1/8 of its size (libjpeg scales while it
    decodes) as long as both sides keep that many pixels: a 12-megapixel phone photo then takes
    a fifth of the time here, for a model that sees 224 × 224.
    """
    load = partial(decoded_as_stored, at_least=at_least)
    image = load(data)
    if ends_early(image, data, load_again=load):
        raise DataEndsEarly
    return to_upright_rgb(image)


def decoded_as_stored(data: bytes, *, at_least: int | None = None) -> Image.Image:
    """`decode`'s image before it is turned upright and converted to RGB."""
    image = Image.open(io.BytesIO(data))
    if at_least:
        image.draft(None, (at_least, at_least))
    image = shrunk_if_huge(image)  # nothing holds a huge original meanwhile
    image.load()
    return image


def ends_early(image: Image.Image, data: bytes, *, load_again: Callable[[bytes], Image.Image]) -> bool:
    """Whether `image`, decoded from `data` by `load_again`, is a JPEG whose data stopped before its
    picture did with an end marker after it anyway (a cut file "repaired", or a header declaring
    more pixels than the data holds). libjpeg fills the rest with flat grey and only warns, and
    Pillow reports nothing, so the photo would be answered on a grey canvas.

    The symptom is a flat grey last block, in the bottom right corner as stored: one pixel to look
    at. The proof, for that rare picture, is a second decode with bytes put before the end marker:
    after a finished picture libjpeg skips them; inside an unfinished one it decodes them, and the
    picture changes (or breaks).
    """
    if not data.startswith(JPEG_START):
        return False
    corner = image.getpixel((image.width - 1, image.height - 1))
    if set(corner if isinstance(corner, tuple) else (corner,)) != {MISSING_DATA_GREY}:
        return False
    end = data.rfind(JPEG_END)
    if end < 0:
        return False
    try:
        again = load_again(data[:end] + FILLER + data[end:])
    except OSError:  # the bytes were read as picture data, and broke it
        return True
    return again.tobytes() != image.tobytes()


def shrunk_if_huge(image: Image.Image) -> Image.Image:
    """An opened image above LARGE_PIXELS, shrunk to LARGE_SIDE on its longer side or SHORT_SIDE on
    its shorter, whichever is larger; others as they are."""
    if image.width * image.height <= LARGE_PIXELS:
        return image
    scale = max(LARGE_SIDE / max(image.size), SHORT_SIDE / min(image.size))
    if scale >= 1:
        return image
    target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # a JPEG decodes at 1/2, 1/4 or 1/8 of its size, not below target; Pillow drafts only once, so
    # after `decode`'s draft for a model's input (below SHORT_SIDE, so at least as strong) this is a no-op
    image.draft(None, target)
    factor = min(image.width // target[0], image.height // target[1])
    if factor > 1 and image.mode in REDUCIBLE_MODES:
        image = image.reduce(factor)  # a cheap box average first (LA, RGBA: via a premultiplied copy)
    return image.resize(target, RESAMPLE)  # palette images are sampled by Pillow, never converted
