"""Property-based fuzzing of the one image-validation service, and of the upload endpoint over it.

Every way a photo enters goes through `image_validate`, and Pillow raises dozens of exception types
on damaged files. The property: whatever the bytes, the answer is a ValidatedImage or a
ValidationError with a sentence, in bounded time; never another exception (a 500 on upload), and
over HTTP never a 5xx and nothing stored for a refused file. Seeds are small real photos in every
accepted format; Hypothesis mutates their bytes (flips, overwrites, truncation, inserted and deleted
runs, one format's header spliced onto another's body, huge declared dimensions). The runs are
derandomized, so every run tries the same inputs.
"""

from __future__ import annotations

import io
import signal
import struct
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from functools import partial

import numpy as np
import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from PIL import Image

from classifier.ml import preprocess
from classifier.models import PredictionJob
from dataset.models import Dataset
from dataset.validation import ACCEPTED_FORMATS, ValidatedImage, image_validate
from tests.conftest import active_version_row, fresh_process_output
from tests.photos import encode, jpeg, photo

API = "/api/v1/predictions"
# Pillow warns about the EXIF of damaged files it still reads; those warnings are the input, not the app
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")
SERVICE_EXAMPLES = 5000
HTTP_EXAMPLES = 40
CALL_LIMIT_SECONDS = 2.0
WATCHDOG_SECONDS = 10  # a call still running by then is stopped, so a hang fails instead of stalling CI
REFUSAL_CODES = {"empty", "too_large", "not_image", "format", "too_many_pixels", "no_pixels", "damaged", "incomplete"}
FUZZ_SETTINGS = {
    "deadline": None,  # wall time is asserted per call below, with a margin a loaded CI machine needs
    "derandomize": True,
    "database": None,  # a derandomized run needs no database of past failures
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


# ----- seeds: small real photos in each accepted format, and where their headers declare the size


@dataclass(frozen=True)
class Seed:
    name: str
    data: bytes
    # (offset, kind) of the fields that declare the width and the height, in this order
    size_fields: tuple[tuple[int, str], tuple[int, str]]


def exif_with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def jpeg_size_fields(data: bytes) -> tuple[tuple[int, str], tuple[int, str]]:
    """The SOFn segment's height and width (big-endian 16-bit), found by walking the markers."""
    position = 2
    while position + 4 <= len(data):
        marker, length = data[position + 1], struct.unpack(">H", data[position + 2:position + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            return (position + 7, "be16"), (position + 5, "be16")
        position += 2 + length
    raise AssertionError("no SOF marker in the seed JPEG")


def gif_size_fields(data: bytes) -> tuple[tuple[int, str], tuple[int, str]]:
    """The logical screen's width and height (little-endian 16-bit), which Pillow takes as the size."""
    return (6, "le16"), (8, "le16")


def webp_size_fields(data: bytes) -> tuple[tuple[int, str], tuple[int, str]]:
    chunk = data[12:16]
    if chunk == b"VP8X":  # canvas width - 1 and height - 1, 24-bit little-endian
        return (24, "le24"), (27, "le24")
    if chunk == b"VP8L":  # 14 bits each, packed after the signature byte
        return (21, "vp8l_width"), (21, "vp8l_height")
    assert chunk == b"VP8 "  # after the frame tag and start code: 14-bit width and height
    return (26, "le16"), (28, "le16")


def make_seeds() -> list[Seed]:
    cat = photo("chelsea", size=(48, 32))
    astronaut = photo("astronaut", size=(40, 40))
    coffee = photo("coffee", size=(36, 24))
    seeds = [
        ("baseline.jpg", encode(cat, "JPEG", quality=80), jpeg_size_fields),
        ("progressive-rotated.jpg",
         encode(astronaut, "JPEG", quality=70, progressive=True, exif=exif_with_orientation(6)), jpeg_size_fields),
        ("grey.jpg", encode(coffee.convert("L"), "JPEG", quality=75), jpeg_size_fields),
        ("rgb.png", encode(cat, "PNG"), None),
        ("palette-alpha.png", encode(astronaut.convert("RGBA").convert("P"), "PNG"), None),
        ("still.gif", encode(coffee.convert("P"), "GIF"), gif_size_fields),
        ("animated.gif", animated_gif(cat, coffee.resize(cat.size)), gif_size_fields),
        ("lossy.webp", encode(cat, "WEBP", quality=60), webp_size_fields),
        ("lossless.webp", encode(coffee, "WEBP", lossless=True), webp_size_fields),
        ("exif.webp", encode(astronaut, "WEBP", quality=50, exif=exif_with_orientation(8)), webp_size_fields),
        ("rgb.bmp", encode(coffee.resize((20, 14)), "BMP"), None),
    ]
    result = []
    for name, data, fields in seeds:
        if name.endswith(".png"):
            size_fields = ((16, "png_width"), (20, "png_height"))  # IHDR, written with a CRC to match
        elif name.endswith(".bmp"):
            size_fields = ((18, "le32s"), (22, "le32s"))  # a negative height means top-down
        else:
            size_fields = fields(data)
        result.append(Seed(name, data, size_fields))
    return result


def animated_gif(first: Image.Image, second: Image.Image) -> bytes:
    out = io.BytesIO()
    first.convert("P").save(out, format="GIF", save_all=True, append_images=[second.convert("P")], duration=100)
    return out.getvalue()


SEEDS = make_seeds()


def declare_size(data: bytearray, seed: Seed, width: int, height: int) -> bytearray:
    """Write `width` × `height` (wrapped to each field's range) into the seed's header fields."""
    data = bytearray(data)
    for (offset, kind), value in zip(seed.size_fields, (width, height)):
        if offset + 4 > len(data):
            continue
        if kind == "be16":
            data[offset:offset + 2] = struct.pack(">H", value % 0x1_0000)
        elif kind == "le16":
            data[offset:offset + 2] = struct.pack("<H", value % 0x1_0000)
        elif kind == "le24":
            data[offset:offset + 3] = struct.pack("<I", (value - 1) % 0x100_0000)[:3]
        elif kind == "le32s":
            data[offset:offset + 4] = struct.pack("<i", (value + 2**31) % 2**32 - 2**31)
        elif kind in ("vp8l_width", "vp8l_height"):
            bits = struct.unpack("<I", data[offset:offset + 4])[0]
            shift = 0 if kind == "vp8l_width" else 14
            bits = (bits & ~(0x3FFF << shift)) | (((value - 1) % 0x4000) << shift)
            data[offset:offset + 4] = struct.pack("<I", bits)
        elif kind in ("png_width", "png_height"):
            data[offset:offset + 4] = struct.pack(">I", value % 2**32)
            data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # IHDR's CRC, so it is believed
    return data


def declared(seed_name: str, width: int, height: int) -> bytes:
    seed = next(seed for seed in SEEDS if seed.name == seed_name)
    return bytes(declare_size(bytearray(seed.data), seed, width, height))


# ----- mutations: each draws what it needs from Hypothesis, so failures shrink to small edits

DIMENSIONS = st.one_of(
    st.sampled_from([0, 1, 2, 255, 256, 7071, 7072, 16_383, 16_384, 65_535, 65_536,
                     2**24 - 1, 2**24, 2**31 - 1, 2**31, 2**32 - 1, -1, -65_535]),
    st.integers(min_value=-(2**31), max_value=2**32 - 1),
)


def flip_bits(draw, data: bytearray, seed: Seed) -> bytearray:
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] ^= 1 << draw(st.integers(0, 7))
    return data


def overwrite_bytes(draw, data: bytearray, seed: Seed) -> bytearray:
    position = draw(st.integers(0, len(data) - 1))
    markers = st.sampled_from([b"\x00" * 4, b"\xff" * 4, b"\xff\xd8", b"\xff\xd9"])  # zeros, ones, JPEG SOI/EOI
    run = draw(st.binary(min_size=1, max_size=16) | markers)
    data[position:position + len(run)] = run
    return data


def truncate(draw, data: bytearray, seed: Seed) -> bytearray:
    return data[:draw(st.integers(0, len(data) - 1))]


def insert_run(draw, data: bytearray, seed: Seed) -> bytearray:
    position = draw(st.integers(0, len(data)))
    run = draw(st.binary(min_size=1, max_size=32)) * draw(st.sampled_from([1, 2, 64, 4096]))
    return data[:position] + run + data[position:]


def delete_run(draw, data: bytearray, seed: Seed) -> bytearray:
    start = draw(st.integers(0, len(data) - 1))
    return data[:start] + data[start + draw(st.integers(1, 256)):]


def splice_header(draw, data: bytearray, seed: Seed) -> bytearray:
    """The first bytes of another seed (often another format) onto this one's body."""
    other = draw(st.sampled_from(SEEDS)).data
    head = draw(st.integers(1, min(len(other), 128)))
    cut = draw(st.integers(0, min(len(data), 128)))
    return bytearray(other[:head]) + data[cut:]


def huge_dimensions(draw, data: bytearray, seed: Seed) -> bytearray:
    return declare_size(data, seed, draw(DIMENSIONS), draw(DIMENSIONS))


MUTATIONS = (flip_bits, overwrite_bytes, truncate, insert_run, delete_run, splice_header, huge_dimensions)


@st.composite
def mutated_images(draw) -> tuple[str, bytes]:
    """(a description for the failure report, the mutated bytes) from one seed and 1-4 mutations."""
    seed = draw(st.sampled_from(SEEDS))
    data, applied = bytearray(seed.data), []
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        mutation = draw(st.sampled_from(MUTATIONS))
        data = mutation(draw, data, seed)
        applied.append(mutation.__name__)
    return f"{seed.name} + {', '.join(applied)}", bytes(data)


NAMES = st.sampled_from(["photo.jpg", "", "Café 😀 crème.png", "a" * 300, "../../etc/passwd", "x.gif\x00.exe"])


# ----- the property


class CallTimedOut(BaseException):
    """Not an Exception, so the service's own `except Exception` cannot swallow it."""


def timed_out(signum, frame):
    raise CallTimedOut(f"a call was still running after {WATCHDOG_SECONDS} s")


def validate_in_bounded_time(data: bytes, name: str, *, decode=None) -> tuple[ValidatedImage | ValidationError, float]:
    """The service's answer (a result or its ValidationError) and its wall time; any other
    exception propagates and fails the test."""
    previous = signal.signal(signal.SIGALRM, timed_out)
    signal.setitimer(signal.ITIMER_REAL, WATCHDOG_SECONDS)
    started = time.perf_counter()
    try:
        outcome = image_validate(data=data, name=name, decode=decode)
    except ValidationError as error:
        outcome = error
    finally:
        elapsed = time.perf_counter() - started
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return outcome, elapsed


def assert_sentence(message: str) -> None:
    """A sentence a person can read: capitalised (or a quoted name), ends in a full stop, no repr."""
    assert message and message == message.strip(), repr(message)
    assert message[0].isupper() or message[0] == "“", repr(message)
    assert message.endswith("."), repr(message)
    assert len(message.split()) >= 3, repr(message)
    assert "Traceback" not in message and " object at 0x" not in message, repr(message)


def assert_valid_answer(outcome: ValidatedImage | ValidationError, data: bytes) -> None:
    if isinstance(outcome, ValidationError):
        assert outcome.code in REFUSAL_CODES, outcome.code
        assert len(outcome.messages) == 1
        assert_sentence(outcome.messages[0])
    else:
        assert isinstance(outcome, ValidatedImage)
        assert outcome.data == data and outcome.image_format in ACCEPTED_FORMATS
        assert outcome.width >= 1 and outcome.height >= 1
        assert outcome.width * outcome.height <= django_settings.MAX_IMAGE_PIXELS
        assert len(outcome.perceptual_hash) == 16


@pytest.mark.parametrize("seed", SEEDS, ids=[seed.name for seed in SEEDS])
def test_the_seeds_are_valid_images(seed):
    """Mutations start from images the service accepts, so the fuzzing is not all refusals."""
    valid = image_validate(data=seed.data, name=seed.name)
    assert valid.extension == seed.name.rsplit(".", 1)[1]


def test_any_bytes_get_an_image_or_a_sentence_in_bounded_time(capsys):
    """The service's contract under fuzzing: a ValidatedImage or a ValidationError with a sentence,
    never another exception, each call under CALL_LIMIT_SECONDS."""
    tried, outcomes, slowest = [], Counter(), [0.0, ""]

    @settings(max_examples=SERVICE_EXAMPLES, **FUZZ_SETTINGS)
    @given(image=mutated_images(), name=NAMES)
    @example(image=("empty", b""), name="photo.jpg")
    @example(image=("rgb.png declaring 65535 × 65535", declared("rgb.png", 65_535, 65_535)), name="bomb.png")
    def check(image, name):
        description, data = image
        note(f"{description}, name={name!r}, {len(data)} bytes: {data!r}")
        tried.append(description)
        outcome, elapsed = validate_in_bounded_time(data, name)
        assert_valid_answer(outcome, data)
        if elapsed > slowest[0]:
            slowest[:] = [elapsed, description]
        assert elapsed < CALL_LIMIT_SECONDS, f"{description}: {elapsed:.2f} s"
        outcomes[outcome.code if isinstance(outcome, ValidationError) else "accepted"] += 1

    started = time.perf_counter()
    check()
    with capsys.disabled():
        print(f"\nimage_validate fuzz: {len(tried)} inputs in {time.perf_counter() - started:.1f} s, "
              f"slowest call {slowest[0] * 1000:.0f} ms ({slowest[1]}); outcomes {dict(outcomes)}")
    # the run explored both sides of the contract
    assert outcomes["accepted"] > 0 and outcomes["damaged"] > 0 and outcomes["not_image"] > 0
    assert outcomes["too_many_pixels"] > 0


def test_when_the_check_is_the_models_own_decode_any_bytes_get_its_input_or_a_sentence():
    """`manage.py predict` validates each file by decoding it into the model's input, a different
    Pillow path from the plain check: the same contract holds on it, and what it accepts comes
    back as the pixels the model is fed."""
    outcomes = Counter()
    model_decode = partial(preprocess.model_input, size=224)  # as `manage.py predict` passes it

    @settings(max_examples=SERVICE_EXAMPLES // 5, **FUZZ_SETTINGS)
    @given(image=mutated_images(), name=NAMES)
    def check(image, name):
        description, data = image
        note(f"{description}, name={name!r}, {len(data)} bytes: {data!r}")
        outcome, elapsed = validate_in_bounded_time(data, name, decode=model_decode)
        assert_valid_answer(outcome, data)
        assert elapsed < CALL_LIMIT_SECONDS, f"{description}: {elapsed:.2f} s"
        if not isinstance(outcome, ValidationError):
            assert np.array_equal(outcome.decoded, preprocess.model_input(data, 224))
        outcomes[outcome.code if isinstance(outcome, ValidationError) else "accepted"] += 1

    check()
    assert outcomes["accepted"] > 0 and outcomes["damaged"] > 0


def test_a_tiny_file_declaring_a_huge_canvas_is_validated_quickly():
    """An upload of under a kilobyte must not cost a web process seconds and a gigabyte: here a real
    GIF whose header declares 7,071 × 7,071 pixels (just under MAX_IMAGE_PIXELS), which the fuzz run
    found: it used to cost ~2 s and ~1 GB, converted at full size before a thumbnail was taken."""
    data = declared("still.gif", 7071, 7071)
    assert len(data) < 1024
    outcome, elapsed = validate_in_bounded_time(data, "canvas.gif")
    assert_valid_answer(outcome, data)
    assert elapsed < 0.25, f"{len(data)} bytes took {elapsed:.2f} s"


def test_a_tiny_file_declaring_a_huge_canvas_is_decoded_in_little_memory_by_workers_and_thumbnails():
    """The same file, as a worker prepares it for the model and the admin thumbnails it: converted at
    full size it cost ~1 s and ~1 GB each; it is shrunk first now. Measured in a fresh process: its peak resident memory
    (VmHWM)."""
    script = (
        "import sys, time\n"
        "from classifier.ml import preprocess\n"
        "from dataset.imaging import thumbnail_jpeg\n"
        "data = sys.stdin.buffer.read()\n"
        "started = time.perf_counter()\n"
        "assert preprocess.model_input(data, 224).shape == (224, 224, 3)\n"
        "assert thumbnail_jpeg(data, side=160)\n"
        "print(time.perf_counter() - started, peak_kb())\n"
    )
    output = fresh_process_output(script, stdin=declared("still.gif", 7071, 7071))
    seconds, peak_kb = output.split()
    print(f"\nmodel input and thumbnail of a 7071 x 7071 canvas: {float(seconds) * 1000:.0f} ms, peak RSS {int(peak_kb) // 1024} MB")
    assert int(peak_kb) < 250 * 1024  # the canvas alone is 50 MB as a palette, 200 MB as RGBA


# ----- the same inputs through the upload endpoint


@pytest.fixture
def prediction_dataset(db, settings):
    """The default dataset, and no upload limit per address (the fuzz run sends many from one)."""
    settings.PREDICTION_RATE_LIMIT = 0
    return Dataset.objects.create(name="Coffee or not", slug=settings.DEFAULT_DATASET_SLUG)


def stored_files(media_root) -> list:
    return sorted(path for path in media_root.rglob("*") if path.is_file()) if media_root.exists() else []


@pytest.mark.parametrize("active", [True, False], ids=["active-model", "no-model"])
def test_fuzzed_uploads_never_get_a_5xx_and_refusals_store_nothing(client, prediction_dataset, media_root, active,
                                                                  capsys):
    """Through HTTP: 202 (stored) or 400 with {"detail": sentence}; before any model is active, 400
    for a file that is no valid image and 503 for one that is (an upload is validated, then stored
    where a model answers). Never a 5xx, and a refused upload leaves no job row and no file."""
    if active:
        active_version_row(prediction_dataset)
    tried, statuses = [], Counter()

    @settings(max_examples=HTTP_EXAMPLES if active else HTTP_EXAMPLES // 4, **FUZZ_SETTINGS)
    @given(image=mutated_images(), name=NAMES)
    def check(image, name):
        description, data = image
        note(f"{description}, name={name!r}, {len(data)} bytes: {data!r}")
        tried.append(description)
        jobs_before, files_before = PredictionJob.objects.count(), stored_files(media_root)
        upload = SimpleUploadedFile(name or "upload", data, "application/octet-stream")
        response = client.post(API, {"image": upload})
        statuses[response.status_code] += 1
        assert response.status_code in ((202, 400) if active else (400, 503)), (
            f"{description}: {response.status_code} {response.content[:300]!r}"
        )
        if response.status_code == 202:
            assert active
            job = PredictionJob.objects.get(pk=response.json()["id"])
            assert PredictionJob.objects.count() == jobs_before + 1
            assert stored_files(media_root) == sorted(files_before + [media_root / job.image.name])
            return
        assert_sentence(response.json()["detail"])
        assert PredictionJob.objects.count() == jobs_before
        assert stored_files(media_root) == files_before

    started = time.perf_counter()
    check()
    with capsys.disabled():
        print(f"\nupload fuzz ({'active model' if active else 'no model'}): {len(tried)} uploads in "
              f"{time.perf_counter() - started:.1f} s; statuses {dict(sorted(statuses.items()))}")
    assert statuses[400] > 0 and (statuses[202] > 0 or not active)
    if not active:  # a valid photo, whatever the fuzzer drew: 503, and nothing stored
        files_before = stored_files(media_root)
        response = client.post(API, {"image": SimpleUploadedFile("photo.jpg", jpeg(), "image/jpeg")})
        assert response.status_code == 503 and "a curator must train" in response.json()["detail"]
        assert not PredictionJob.objects.exists() and stored_files(media_root) == files_before
