"""Serving: a model version's `model.tflite` run by LiteRT, without TensorFlow.

A worker process loads one Predictor and keeps it; an interpreter is not thread-safe, so each
instance guards its own with a lock. Its thread count comes from the caller (a setting).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier.ml import preprocess
from classifier.ml.metrics import decide, decision
from classifier.ml.quiet import native_noise_dropped

MODEL_FILE = "model.tflite"
METADATA_FILE = "metadata.json"


@dataclass(frozen=True)
class Prediction:
    label: str
    class_index: int
    confidence: float
    probabilities: dict[str, float]
    decision: str  # metrics.ANSWERED, or UNSURE below the confidence the version trusts (its unsure_below)
    cam: np.ndarray  # (h, w, classes) logits per position of the last feature map
    preprocess_ms: float
    inference_ms: float

    def heatmap(self) -> list[list[float]]:
        """Where the photo speaks for the answer against the other labels, scaled to 0..1."""
        others = [i for i in range(self.cam.shape[-1]) if i != self.class_index]
        evidence = self.cam[..., self.class_index] - self.cam[..., others].mean(axis=-1)
        low, high = float(evidence.min()), float(evidence.max())
        scaled = (evidence - low) / (high - low) if high > low else evidence * 0
        return [[round(float(value), 3) for value in row] for row in scaled]


@native_noise_dropped()
def load_interpreter(model_path: Path, num_threads: int):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


class Predictor:
    def __init__(self, directory: Path, *, num_threads: int = 1):
        self.directory = Path(directory)
        self.metadata = json.loads((self.directory / METADATA_FILE).read_text())
        self.class_names: list[str] = self.metadata["labels"]
        self.input_size: int = self.metadata["input_size"]
        self.threshold: float | None = self.metadata.get("threshold")
        # a version is fed the pixels it was trained on
        self.reduced_jpeg = self.metadata.get("preprocess_version", 1) >= 3
        self.interpreter = load_interpreter(self.directory / MODEL_FILE, num_threads)
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        outputs = {self.output_kind(detail): detail["index"] for detail in self.interpreter.get_output_details()}
        self.probabilities_index, self.cam_index = outputs["probabilities"], outputs["cam"]
        self.lock = threading.Lock()

    def output_kind(self, detail: dict) -> str:
        """The 2-D output is the probabilities, the 4-D one the activation map (names vary by converter)."""
        return "probabilities" if len(detail["shape"]) == 2 else "cam"

    def predict_pixels(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, cam) for one preprocessed uint8 image of input_size × input_size."""
        with self.lock:
            self.interpreter.set_tensor(self.input_index, pixels[None].astype(np.float32))
            self.interpreter.invoke()
            probabilities = self.interpreter.get_tensor(self.probabilities_index)[0].copy()
            cam = self.interpreter.get_tensor(self.cam_index)[0].copy()
        return probabilities, cam

    def model_input(self, data: bytes) -> np.ndarray:
        return preprocess.model_input(data, self.input_size, reduced_jpeg=self.reduced_jpeg)

    def predict(self, data: bytes) -> Prediction:
        started = time.perf_counter()
        pixels = self.model_input(data)
        return self.predict_model_input(pixels, preprocess_ms=(time.perf_counter() - started) * 1000)

    def predict_model_input(self, pixels: np.ndarray, *, preprocess_ms: float) -> Prediction:
        """The answer for pixels `model_input` made; `preprocess_ms` is what making them took."""
        started = time.perf_counter()
        probabilities, cam = self.predict_pixels(pixels)
        finished = time.perf_counter()
        index = int(decide(probabilities[None], self.threshold)[0])
        return Prediction(
            label=self.class_names[index],
            class_index=index,
            confidence=float(probabilities[index]),
            probabilities={name: float(p) for name, p in zip(self.class_names, probabilities)},
            decision=decision(probabilities, self.metadata),
            cam=cam,
            preprocess_ms=preprocess_ms,
            inference_ms=(finished - started) * 1000,
        )
