"""Backbone embeddings, computed once per (photo, backbone, views) and cached on disk.

A photo's entry holds one pooled vector per view of it. The plain views are the photo as it is and
mirrored left-right (the flip augmentation); `augmented_views` adds random resized crops with small
colour changes, drawn from a generator seeded by the photo's key, so an entry never depends on
which other photos were computed with it. A retrain after adding 50 photos computes 50 entries;
the rest are read back.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier.ml import preprocess

BATCH_SIZE = 32
# Random resized crops: the share of the photo's area kept and the aspect ratio of the crop.
CROP_AREA = (0.5, 1.0)
CROP_ASPECT = (3 / 4, 4 / 3)
COLOUR_CHANGE = 0.15  # at most ±15 % brightness, contrast and saturation


@dataclass(frozen=True)
class Example:
    key: str  # the photo's sha256: the cache key and how metrics name the photo
    read: Callable[[], bytes]
    label: int
    split: str
    group: str | None = None  # what the photo shows ("matcha", "latte_art"…), for per-group figures


class EmbeddingCache:
    """One .npy file per photo under <root>/<namespace>/<aa>/<sha256>.npy, written atomically.

    The namespace names everything an embedding depends on besides the photo (backbone, input
    size, preprocessing version), so a change there can never serve a stale vector.
    """

    def __init__(self, root: Path, namespace: str):
        self.directory = Path(root) / namespace

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        try:
            return np.load(self.path(key))
        except (FileNotFoundError, ValueError, OSError):
            return None

    def put(self, key: str, vectors: np.ndarray) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(descriptor, "wb") as file:
            np.save(file, vectors)
        os.replace(temporary, path)


Views = Callable[[bytes, str, int], list[np.ndarray]]


def plain_views(data: bytes, key: str, size: int) -> list[np.ndarray]:
    """The model's input (`preprocess.model_input`) and its mirror image."""
    pixels = preprocess.model_input(data, size)
    return [pixels, pixels[:, ::-1].copy()]


def augmented_views(count: int) -> Views:
    """`count` random resized crops of the decoded photo, each possibly mirrored, with small
    brightness, contrast and saturation changes; the same photo always gives the same views."""
    from PIL import ImageEnhance, ImageOps

    def views(data: bytes, key: str, size: int) -> list[np.ndarray]:
        image = preprocess.decode(data, at_least=size)
        rng = np.random.default_rng(int(key[:16], 16))
        result = []
        for _ in range(count):
            area = image.width * image.height * rng.uniform(*CROP_AREA)
            aspect = np.exp(rng.uniform(*np.log(CROP_ASPECT)))
            width = int(min(image.width, round(np.sqrt(area * aspect))))
            height = int(min(image.height, round(np.sqrt(area / aspect))))
            left, top = int(rng.integers(0, image.width - width + 1)), int(rng.integers(0, image.height - height + 1))
            view = image.crop((left, top, left + width, top + height))
            if rng.random() < 0.5:
                view = ImageOps.mirror(view)
            for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
                view = enhancer(view).enhance(1 + rng.uniform(-COLOUR_CHANGE, COLOUR_CHANGE))
            result.append(preprocess.resize(view, size))
        return result

    return views


def embeddings_compute(
    examples: Sequence[Example],
    *,
    embedder,
    input_size: int,
    cache: EmbeddingCache,
    views: Views = plain_views,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, int]:
    """(len(examples), views per photo, dim) float32 array, and how many had to be computed.

    The cache's namespace must name `views` (plain views and augmented ones live apart)."""
    import tensorflow as tf

    run = tf.function(lambda batch: embedder(batch, training=False), reduce_retracing=True)
    found = {example.key: cache.get(example.key) for example in examples}
    missing = [example for example in examples if found[example.key] is None]
    done = len(examples) - len(missing)
    if on_progress:
        on_progress(done, len(examples))
    for start in range(0, len(missing), BATCH_SIZE):
        batch_examples = missing[start : start + BATCH_SIZE]
        per_example = [views(example.read(), example.key, input_size) for example in batch_examples]
        flat = [pixels for example_views in per_example for pixels in example_views]
        outputs = []
        for offset in range(0, len(flat), BATCH_SIZE):
            pixels = np.zeros((BATCH_SIZE, input_size, input_size, 3), np.float32)  # one shape: one trace
            chunk = flat[offset : offset + BATCH_SIZE]
            pixels[: len(chunk)] = np.stack(chunk)
            outputs.append(run(pixels).numpy()[: len(chunk)])
        vectors = np.concatenate(outputs)
        offset = 0
        for example, example_views in zip(batch_examples, per_example):
            entry = vectors[offset : offset + len(example_views)]
            offset += len(example_views)
            cache.put(example.key, entry)
            found[example.key] = entry
        done += len(batch_examples)
        if on_progress:
            on_progress(done, len(examples))
    return np.stack([found[example.key] for example in examples]).astype(np.float32), len(missing)
