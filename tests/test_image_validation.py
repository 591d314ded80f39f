"""The one image-validation service: what it accepts, what it refuses, and the sentence it says."""

import io
from functools import partial

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from PIL import Image, ImageOps

from classifier.ml import preprocess
from coffeeclassifier import imaging
from dataset.validation import image_validate
from tests.conftest import fresh_process_output
from tests.photos import encode, jpeg, photo, png_declaring, slow_photo


def refusal(data: bytes, name: str = "photo.jpg") -> str:
    with pytest.raises(ValidationError) as error:
        image_validate(data=data, name=name)
    return " ".join(error.value.messages)


@pytest.mark.parametrize(
    ("image_format", "mode"),
    [("JPEG", "RGB"), ("PNG", "RGB"), ("WEBP", "RGB"), ("GIF", "P"), ("BMP", "RGB")],
)
def test_accepts_each_allowed_format(image_format, mode):
    data = encode(photo("chelsea").convert(mode), image_format)
    valid = image_validate(data=data, name=f"cat.{image_format.lower()}")
    assert valid.image_format == image_format
    assert (valid.width, valid.height) == (451, 300)
    assert len(valid.perceptual_hash) == 16


def test_empty_file_is_refused():
    assert refusal(b"") == "“photo.jpg” is empty."


def test_text_is_not_an_image():
    message = refusal(b"hello, I am a text file\n" * 10, name="notes.jpg")
    assert "“notes.jpg” is not an image" in message
    assert "JPEG, PNG, WebP, GIF or BMP" in message


def test_truncated_jpeg_is_refused():
    data = jpeg("coffee")
    assert "damaged or incomplete" in refusal(data[: len(data) // 2])


@pytest.mark.parametrize("decode", [None, partial(preprocess.model_input, size=224)])
@pytest.mark.parametrize(
    ("size", "progressive", "kept"),
    [
        ((640, 480), False, 0.5),
        ((2400, 1600), False, 0.5),
        ((8000, 6000), False, 0.5),
        # a progressive file holds the whole picture, blurred, once its first passes are in (a fifth
        # of the file here): cut later, it shows all of the photo and passes; cut before, it is grey
        ((2400, 1600), True, 0.05),
    ],
)
def test_a_jpeg_whose_data_ends_early_is_refused_even_with_an_end_marker(size, progressive, kept, decode):
    """A real photo cut in the middle of its picture data and "repaired" with the end marker a JPEG
    ends with: libjpeg fills what is missing with grey and only warns, and the upload (checked
    reduced, or decoded into the model's input as `manage.py predict` checks it) must not be
    answered on a grey canvas."""
    whole = encode(photo("coffee", size=size), "JPEG", quality=85, progressive=progressive)
    data = whole[: int(len(whole) * kept)] + b"\xff\xd9"
    with pytest.raises(ValidationError) as error:
        image_validate(data=data, name="photo.jpg", decode=decode)
    assert " ".join(error.value.messages) == (
        "“photo.jpg” is incomplete: its data ends before its picture does, so most of it would be grey; "
        "send the whole file."
    )
    with pytest.raises(imaging.DataEndsEarly):  # and a worker or a training decoding it refuses it too
        preprocess.model_input(data, 224)


@pytest.mark.parametrize("decode", [None, partial(preprocess.model_input, size=224)])
def test_a_whole_jpeg_with_a_mid_grey_corner_is_accepted(decode):
    """The grey that marks missing data can be a photo's own: a whole file decodes the same whatever
    follows its picture data, so it passes."""
    pixels = np.asarray(photo("coffee", size=(640, 480))).copy()
    pixels[-64:, -64:] = 128
    data = encode(Image.fromarray(pixels), "JPEG", quality=90)
    assert imaging.decode(data).getpixel((639, 479)) == (128, 128, 128)
    assert image_validate(data=data, decode=decode).image_format == "JPEG"


def test_decompression_bomb_is_refused_before_decoding():
    message = refusal(png_declaring(50_000, 50_000), name="bomb.png")
    assert "“bomb.png”" in message and "pixels" in message and "limit" in message


def test_pixel_limit_follows_the_setting(settings):
    settings.MAX_IMAGE_PIXELS = 100 * 100
    assert "600 × 400 pixels; the limit is 10,000 pixels" in refusal(jpeg("coffee"))


def test_oversize_upload_is_refused(settings):
    settings.MAX_UPLOAD_BYTES = 10_000
    data = jpeg("astronaut")
    assert len(data) > 10_000
    assert f"“photo.jpg” is {len(data) / 1024:.1f} KB; the limit is 9.8 KB." == refusal(data)


def test_format_outside_the_allow_list_is_named():
    assert "“photo.jpg” is a TIFF image; upload a JPEG, PNG, WebP, GIF or BMP file." == refusal(
        encode(photo("coffee"), "TIFF")
    )


@pytest.mark.parametrize(("image_format", "named"), [("ICO", "an ICO"), ("AVIF", "an AVIF"), ("TIFF", "a TIFF")])
def test_a_refused_format_is_named_with_its_article(image_format, named):
    assert f"“photo.jpg” is {named} image;" in refusal(encode(photo("coffee", size=(64, 48)), image_format))


def test_cmyk_jpeg_becomes_rgb():
    valid = image_validate(data=encode(photo("coffee").convert("CMYK"), "JPEG"))
    decoded = imaging.decode(valid.data)
    assert decoded.mode == "RGB"
    original = np.asarray(photo("coffee"), dtype=float)
    assert np.abs(np.asarray(decoded, dtype=float) - original).mean() < 12


def test_sixteen_bit_png_keeps_its_tones():
    gray = np.asarray(photo("camera"), dtype=np.uint16) * 257  # full 16-bit range
    data = encode(Image.fromarray(gray), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    decoded = np.asarray(imaging.decode(data), dtype=int)
    assert np.abs(decoded[..., 0] - np.asarray(photo("camera"), dtype=int)).max() <= 1


def test_palette_and_alpha_are_composited_on_white():
    rgba = photo("chelsea").convert("RGBA")
    rgba.putalpha(0)  # fully transparent
    decoded = imaging.decode(encode(rgba, "PNG"))
    assert decoded.mode == "RGB" and np.asarray(decoded).min() == 255
    palette = imaging.decode(encode(photo("chelsea").convert("P"), "GIF"))
    assert palette.mode == "RGB" and np.asarray(palette).std() > 10


def test_exif_orientation_is_applied():
    image = photo("coffee")  # 600 wide, 400 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    data = encode(image, "JPEG", exif=exif.tobytes())
    valid = image_validate(data=data)
    assert (valid.width, valid.height) == (400, 600)
    upright = imaging.decode(data)
    assert upright.size == (400, 600)
    # turned in place, to the pixels Pillow's own copy would have
    assert np.array_equal(np.asarray(upright), np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data)))))


def test_a_huge_photo_is_shrunk_before_it_is_converted_and_keeps_its_orientation():
    """Above LARGE_PIXELS a photo is reduced first (a worker must not spend a gigabyte on it)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(photo("coffee", size=(5000, 4000)), "JPEG", exif=exif.tobytes())
    assert 5000 * 4000 > imaging.LARGE_PIXELS
    upright = imaging.decode(data)
    assert upright.mode == "RGB" and upright.size == (1638, 2048)  # turned, longer side LARGE_SIDE
    small = imaging.decode(encode(photo("coffee", size=(500, 400)), "JPEG", exif=exif.tobytes()))
    assert np.abs(preprocess.resize(upright, 64).astype(int) - preprocess.resize(small, 64)).mean() < 8
    # a panorama keeps SHORT_SIDE of its height, not what fitting its width into LARGE_SIDE leaves
    panorama = imaging.decode(encode(photo("coffee", size=(16_400, 1_000)), "JPEG"))
    assert panorama.size == (7347, imaging.SHORT_SIDE)


def test_animated_gif_uses_its_first_frame():
    frames = [photo("chelsea").convert("P"), photo("coffee", size=(451, 300)).convert("P")]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    first = imaging.decode(out.getvalue())
    expected = imaging.decode(encode(frames[0], "GIF"))
    assert np.array_equal(np.asarray(first), np.asarray(expected))


def test_large_canvases_are_decoded_one_at_a_time_so_a_burst_costs_one_canvas(tmp_path):
    """Four threads of one process (a web worker's) validate a 49-megapixel PNG at once; the
    process's peak memory grows by about one canvas (187 MB: Pillow keeps RGB in 4 bytes a pixel),
    where four decodes side by side took 667–719 MB. Measured in a fresh process."""
    canvas_mb = 7000 * 7000 * 4 / 2**20
    photo_path = tmp_path / "large.png"
    photo_path.write_bytes(slow_photo())
    code = (
        "import sys, threading, django; django.setup()\n"
        "from dataset.validation import image_validate\n"
        "data = open(sys.argv[1], 'rb').read(); sizes = []\n"
        "def validate(): sizes.append(image_validate(data=data).width)\n"
        "before = peak_kb()\n"
        "threads = [threading.Thread(target=validate) for _ in range(4)]\n"
        "[thread.start() for thread in threads]; [thread.join() for thread in threads]\n"
        "print(sizes, (peak_kb() - before) / 1024)"
    )
    sizes, grown_mb = fresh_process_output(code, str(photo_path)).rsplit(" ", 1)
    assert sizes == "[7000, 7000, 7000, 7000]"
    assert float(grown_mb) < 1.5 * canvas_mb, f"peak grew by {grown_mb} MB"
