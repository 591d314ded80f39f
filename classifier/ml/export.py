"""Writing a version's artifacts and proving the served file answers like the trained graph."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from classifier.ml import preprocess
from classifier.ml.head import Head
from classifier.ml.predictor import METADATA_FILE, MODEL_FILE, Predictor

if TYPE_CHECKING:
    from classifier.ml.embeddings import Example

KERAS_FILE = "model.keras"


class ParityError(RuntimeError):
    """The exported TFLite model does not reproduce the Keras model's probabilities."""


def artifacts_write(classifier, *, directory: Path, tflite: bytes, metadata: dict) -> dict[str, Path]:
    """model.keras (for fine-tuning later), model.tflite (served), metadata.json (read by both)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"keras": directory / KERAS_FILE, "tflite": directory / MODEL_FILE, "metadata": directory / METADATA_FILE}
    classifier.save(paths["keras"])
    paths["tflite"].write_bytes(tflite)
    metadata_write(directory, metadata)
    return paths


def version_write(
    classifier, tflite: bytes, *, directory: Path, metadata: dict, val_examples: Sequence[Example], input_size: int,
    reference: np.ndarray, tolerance: float, on_progress: Callable[[float], None],
) -> dict[str, Path]:
    """Write a version's files into `directory`, then prove that its TFLite file answers the
    validation photos as `reference` (their probabilities in evaluation) says, or raise
    ParityError; the parity and the file's size join metadata["metrics"], written again."""
    paths = artifacts_write(classifier, directory=directory, tflite=tflite, metadata=metadata)
    on_progress(0.7)
    # The reference is what evaluation measured (Keras embeddings through the head), so parity
    # proves that the served file answers as the metrics say.
    pixels = np.stack([preprocess.model_input(e.read(), input_size) for e in val_examples])
    metadata["metrics"]["parity_max_abs_diff"] = parity_check(directory, pixels, reference, tolerance=tolerance)
    metadata["metrics"]["tflite_bytes"] = paths["tflite"].stat().st_size
    metadata_write(directory, metadata)
    on_progress(1.0)
    return paths


def tflite_convert(classifier) -> bytes:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / MODEL_FILE
        classifier.export(str(path), format="litert", verbose=False)
        return path.read_bytes()


def tflite_for_head(*, build_classifier, head: Head, template_dir: Path, template_key: str) -> bytes:
    """The classifier as TFLite, from a converted template with the head's weights written in.

    Converting takes ~6 s, most of a retrain, yet only the head changes between versions of one
    backbone. So the first training converts a template whose head holds seeded random weights,
    and later ones replace those bytes (the converter stores the kernel transposed) with the new
    head. If the template bytes are not found exactly once, it converts in full. The parity check
    that follows proves the result either way.
    """
    template_path = template_dir / f"{template_key}.tflite"
    rng = np.random.default_rng(20261125)
    sentinel = Head(
        kernel=rng.standard_normal(head.kernel.shape).astype(np.float32),
        bias=rng.standard_normal(head.bias.shape).astype(np.float32),
    )
    if not template_path.is_file():
        template_dir.mkdir(parents=True, exist_ok=True)
        temporary = template_path.with_suffix(".tmp")
        temporary.write_bytes(tflite_convert(build_classifier(sentinel)))
        os.replace(temporary, template_path)
    data = template_path.read_bytes()
    replacements = [
        (np.ascontiguousarray(sentinel.kernel.T).tobytes(), np.ascontiguousarray(head.kernel.T).tobytes()),
        (sentinel.bias.tobytes(), head.bias.tobytes()),
    ]
    if any(data.count(old) != 1 for old, _ in replacements):
        return tflite_convert(build_classifier(head))
    for old, new in replacements:
        data = data.replace(old, new)
    return data


def metadata_write(directory: Path, metadata: dict) -> None:
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True))


def parity_check(directory: Path, pixels: np.ndarray, expected: np.ndarray, *, tolerance: float) -> float:
    """Largest |TFLite − Keras| probability over the given images; ParityError above `tolerance`."""
    predictor = Predictor(directory)
    worst = 0.0
    for image, reference in zip(pixels, expected):
        probabilities, _ = predictor.predict_pixels(image)
        worst = max(worst, float(np.abs(probabilities - reference).max()))
    if worst > tolerance:
        raise ParityError(
            f"The TFLite model differs from the Keras model by up to {worst:.2e} in probability "
            f"(allowed {tolerance:.0e}); the version is not usable."
        )
    return worst
