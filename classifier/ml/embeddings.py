"""Backbone embeddings, computed once per (photo, backbone) and cached on disk.

Each photo's entry holds two pooled vectors: the photo as it is and mirrored left-right (the flip
augmentation). A retrain after adding 50 photos computes 50 entries; the rest are read back.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier.ml import preprocess

VARIANTS = 2  # original, mirrored
BATCH_SIZE = 32


@dataclass(frozen=True)
class Example:
    key: str  # the photo's sha256: the cache key and how metrics name the photo
    read: Callable[[], bytes]
    label: int
    split: str


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


def embeddings_compute(
    examples: Sequence[Example],
    *,
    embedder,
    input_size: int,
    cache: EmbeddingCache,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, int]:
    """(len(examples), VARIANTS, dim) float32 array, and how many had to be computed."""
    import tensorflow as tf

    run = tf.function(lambda batch: embedder(batch, training=False), reduce_retracing=True)
    found = {example.key: cache.get(example.key) for example in examples}
    missing = [example for example in examples if found[example.key] is None]
    done = len(examples) - len(missing)
    if on_progress:
        on_progress(done, len(examples))
    for start in range(0, len(missing), BATCH_SIZE):
        batch_examples = missing[start : start + BATCH_SIZE]
        pixels = np.zeros((BATCH_SIZE, input_size, input_size, 3), np.float32)  # one shape: one trace
        for index, example in enumerate(batch_examples):
            pixels[index] = preprocess.model_input(example.read(), input_size)
        original = run(pixels).numpy()
        mirrored = run(pixels[:, :, ::-1, :].copy()).numpy()
        for index, example in enumerate(batch_examples):
            vectors = np.stack([original[index], mirrored[index]])
            cache.put(example.key, vectors)
            found[example.key] = vectors
        done += len(batch_examples)
        if on_progress:
            on_progress(done, len(examples))
    return np.stack([found[example.key] for example in examples]).astype(np.float32), len(missing)
