"""The one validation every image passes, by any route (upload, import, prediction): size, format,
declared pixels, then a full decode as a worker will do it; a refusal is a sentence."""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from functools import cached_property

from django.conf import settings
from django.core.exceptions import ValidationError
from PIL import Image, UnidentifiedImageError

from coffeeclassifier.imaging import DataEndsEarly, ends_early, to_upright_rgb
from dataset.imaging import difference_hash, small_upright

# Pillow format name → file extension. MPO is how Pillow reads many phone cameras' JPEGs.
ACCEPTED_FORMATS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}


ACCEPTED_FORMATS_TEXT = "JPEG, PNG, WebP, GIF or BMP"


# What a browser is told each accepted format is: never anything it could execute.
CONTENT_TYPES = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp",
                 "GIF": "image/gif", "BMP": "image/bmp"}


EXIF_ORIENTATION = 0x0112


TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height


DECODE_CHECK_SIDE = 128


# A JPEG decodes reduced; any other format holds its whole canvas while it decodes (4 bytes a
# pixel: up to 200 MB within MAX_IMAGE_PIXELS). Above this size, one such decode at a time per
# process: a burst of large PNGs on a web process's threads then costs one canvas, not one each.
LARGE_CANVAS_PIXELS = 4_000_000


REDUCED_DECODE_FORMATS = ("JPEG", "MPO")


large_canvas_decode = threading.Lock()


def human_size(size: float) -> str:
    for unit in ("bytes", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


@dataclass(frozen=True)
class ValidatedImage:
    data: bytes
    image_format: str
    extension: str
    width: int
    height: int
    decoded: object = None  # what the caller's `decode` made of the data, if it passed one

    # Dataset images store it; a prediction upload never uses it, so it is not computed on its path.
    @cached_property
    def perceptual_hash(self) -> str:
        return difference_hash(small_upright(self.data, side=DECODE_CHECK_SIDE))


def image_validate(*, data: bytes, name: str = "", decode: Callable[[bytes], object] | None = None) -> ValidatedImage:
    """Accept an image a person would call valid, or raise ValidationError with a sentence.

    Checks, in order of cost: size, format and declared pixels (header only, so a decompression
    bomb is refused before it is decoded), integrity, then a decode (reduced, for a JPEG) and a check
    that it turns and converts to RGB as a worker will. A caller that needs the image decoded
    anyway passes `decode` (one that turns and converts it, such as `preprocess.model_input`): that
    decode is then the check, its result comes back as `decoded`, and the image is decoded once.
    """
    what = f"“{name}”" if name else "The file"
    size_check(what, data)
    with warnings.catch_warnings():
        # Pillow warns, then raises, above its own global pixel limit; ours is checked in `header_check`.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image_format, width, height = header_check(what, data)
        orientation, decoded = decode_check(what, data, image_format=image_format, width=width, height=height,
                                            decode=decode)
    if orientation in TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    return ValidatedImage(
        data=data,
        image_format=image_format,
        extension=ACCEPTED_FORMATS[image_format],
        width=width,
        height=height,
        decoded=decoded,
    )


def size_check(what: str, data: bytes) -> None:
    """Refuse an empty file or one above MAX_UPLOAD_BYTES."""
    if not data:
        raise ValidationError(f"{what} is empty.", code="empty")
    if len(data) > settings.MAX_UPLOAD_BYTES:
        raise ValidationError(
            f"{what} is {human_size(len(data))}; the limit is {human_size(settings.MAX_UPLOAD_BYTES)}.",
            code="too_large",
        )


def header_check(what: str, data: bytes) -> tuple[str, int, int]:
    """The format, width and height the header declares, once the format is accepted, the pixels
    are within MAX_IMAGE_PIXELS and the file's structure verifies; nothing is decoded."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            image_format, (width, height) = probe.format, probe.size
            if image_format in ACCEPTED_FORMATS:
                check_pixels(what, width, height)
                probe.verify()
    except Image.DecompressionBombError:
        raise ValidationError(
            f"{what} declares too many pixels; the limit is {settings.MAX_IMAGE_PIXELS:,} pixels.",
            code="too_many_pixels",
        ) from None
    except UnidentifiedImageError:
        raise ValidationError(
            f"{what} is not an image that can be read; upload a {ACCEPTED_FORMATS_TEXT} file.", code="not_image"
        ) from None
    except ValidationError:
        raise
    except Exception as error:  # noqa: BLE001 (Pillow raises many types for damaged files)
        raise damaged(what, error) from None
    if image_format not in ACCEPTED_FORMATS:
        raise ValidationError(
            f"{what} is {with_article(image_format)} image; upload a {ACCEPTED_FORMATS_TEXT} file.", code="format"
        )
    return image_format, width, height


def decode_check(
    what: str, data: bytes, *, image_format: str, width: int, height: int, decode: Callable[[bytes], object] | None
) -> tuple[int, object]:
    """The image's EXIF orientation and what `decode` made of it (None without one), once it
    decodes whole and turns and converts to RGB as a worker will."""
    try:
        with decode_slot(image_format, width, height), Image.open(io.BytesIO(data)) as image:
            orientation = image.getexif().get(EXIF_ORIENTATION, 1)
            if decode is None:
                # A JPEG decodes at a fraction of its size here, several times faster, and every
                # byte of its data is still read, so a truncated file fails all the same (one
                # given an end marker after the cut decodes, grey where data is missing: see
                # `ends_early`).
                check_loaded(image)
                if ends_early(image, data, load_again=lambda again: check_loaded(Image.open(io.BytesIO(again)))):
                    raise DataEndsEarly
                # Turning and converting to RGB (what a worker does next) fail by mode and
                # metadata, not by size: one pixel's corner shows it, where the canvas can be huge.
                to_upright_rgb(image.crop((0, 0, 1, 1)))
            decoded = None if decode is None else decode(data)
    except DataEndsEarly:
        raise ValidationError(
            f"{what} is incomplete: its data ends before its picture does, so most of it would be grey; "
            "send the whole file.", code="incomplete",
        ) from None
    except Exception as error:  # noqa: BLE001 (Pillow raises many types for damaged files)
        raise damaged(what, error) from None
    return orientation, decoded


def with_article(format_name: str) -> str:
    """"a TIFF", "an AVIF", "an MPEG": a format's name is read letter by letter (so "an" before
    F, H, L, M, N, R, S, X too), unless it is a word."""
    read_as_a_word = format_name in ("FITS", "MCIDAS", "SPIDER", "SUN")
    vowel_sound = format_name[:1] in "AEIOU" or (format_name[:1] in "FHLMNRSX" and not read_as_a_word)
    return f"{'an' if vowel_sound else 'a'} {format_name}"


def check_loaded(image: Image.Image) -> Image.Image:
    """The opened image decoded as `image_validate` checks it: a JPEG at a fraction of its size."""
    image.draft("RGB", (DECODE_CHECK_SIDE, DECODE_CHECK_SIDE))
    image.load()
    return image


def decode_slot(image_format: str, width: int, height: int):
    """What a decode of this image holds while it runs: the process's large-canvas lock, or nothing."""
    if image_format in REDUCED_DECODE_FORMATS or width * height <= LARGE_CANVAS_PIXELS:
        return nullcontext()
    return large_canvas_decode


def check_pixels(what: str, width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ValidationError(f"{what} has no pixels ({width} × {height}).", code="no_pixels")
    if width * height > settings.MAX_IMAGE_PIXELS:
        raise ValidationError(
            f"{what} is {width:,} × {height:,} pixels; the limit is {settings.MAX_IMAGE_PIXELS:,} pixels.",
            code="too_many_pixels",
        )


def damaged(what: str, error: Exception) -> ValidationError:
    return ValidationError(f"{what} is damaged or incomplete and cannot be decoded ({error}).", code="damaged")
