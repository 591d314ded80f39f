"""From labelled photos to a measured, exported model version directory.

Stages: embeddings (frozen backbone, cached) → head (linear softmax, L2 chosen on validation) →
evaluation (threshold chosen on validation, test reported at it) → export (Keras, TFLite,
metadata) → parity (TFLite against Keras on the validation photos).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from classifier.ml import backbones, preprocess
from classifier.ml.embeddings import EmbeddingCache, Example, embeddings_compute
from classifier.ml.head import head_fit, log_loss
from classifier.ml.metrics import evaluate, threshold_choose
from classifier.ml.quiet import native_noise_dropped


class NotTrainable(ValueError):
    """The data cannot give a meaningful model; the message says what to fix."""


@dataclass(frozen=True)
class TrainSettings:
    backbone: str = backbones.DEFAULT_BACKBONE
    epochs: int = 500  # full-batch steps of the head
    l2_grid: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 3e-2)
    flip: bool = True
    parity_tolerance: float = 1e-3

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "l2_grid": list(self.l2_grid)}

    @classmethod
    def from_dict(cls, values: dict) -> TrainSettings:
        """The settings a version was recorded with (JSON stores the grid as a list)."""
        return cls(**{**values, "l2_grid": tuple(values["l2_grid"])})


@dataclass
class TrainOutcome:
    metrics: dict
    threshold: float | None
    paths: dict[str, Path]
    timings: dict[str, float] = field(default_factory=dict)


def training_data_check(examples: Sequence[Example], class_names: Sequence[str]) -> None:
    """Refuse data that cannot train or be measured, before any expensive work."""
    if len(class_names) < 2:
        raise NotTrainable(f"Training needs at least 2 labels with photos; this dataset has {len(class_names)}.")
    train_counts = np.bincount([e.label for e in examples if e.split == "train"], minlength=len(class_names))
    empty = [name for name, count in zip(class_names, train_counts) if count == 0]
    if empty:
        raise NotTrainable(f"The label(s) {', '.join(map(repr, empty))} have no training photo; add some or re-split.")
    if not any(e.split == "val" for e in examples):
        raise NotTrainable("The validation split is empty; re-split the dataset so some photos are in val.")


@native_noise_dropped()
def model_train(
    *,
    examples: Sequence[Example],
    class_names: Sequence[str],
    settings: TrainSettings,
    cache_root: Path,
    directory: Path,
    metadata: dict,
    on_progress: Callable[[str, float], None] = lambda stage, fraction: None,
) -> TrainOutcome:
    """Train, evaluate and export into `directory`; raises NotTrainable, WeightsUnavailable, ParityError."""
    from classifier.ml.export import artifacts_write, metadata_write, parity_check, tflite_for_head
    from classifier.ml.model import build_classifier, build_embedder

    training_data_check(examples, class_names)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    backbone = backbones.backbone_get(settings.backbone)
    base = backbones.build_base(backbone)
    embedder = build_embedder(backbone, base)
    cache = EmbeddingCache(cache_root, f"{backbone.name}-{backbone.input_size}-p{preprocess.VERSION}")
    vectors, computed = embeddings_compute(
        examples, embedder=embedder, input_size=backbone.input_size, cache=cache,
        on_progress=lambda done, total: on_progress("embeddings", done / max(total, 1)),
    )
    timings["embeddings"], clock = time.perf_counter() - clock, time.perf_counter()

    labels = np.array([e.label for e in examples])
    splits = np.array([e.split for e in examples])
    train, val, test = (splits == name for name in ("train", "val", "test"))
    train_x = np.concatenate([vectors[train, 0], vectors[train, 1]]) if settings.flip else vectors[train, 0]
    train_y = np.concatenate([labels[train], labels[train]]) if settings.flip else labels[train]
    candidates = []
    for index, l2 in enumerate(settings.l2_grid):
        head = head_fit(train_x, train_y, classes=len(class_names), l2=l2, steps=settings.epochs)
        candidates.append((log_loss(head.probabilities(vectors[val, 0]), labels[val]), l2, head))
        on_progress("head", (index + 1) / len(settings.l2_grid))
    val_loss, l2, head = min(candidates, key=lambda candidate: candidate[0])
    timings["head"], clock = time.perf_counter() - clock, time.perf_counter()

    keys = [e.key for e in examples]
    probabilities = head.probabilities(vectors[:, 0])
    threshold = threshold_choose(probabilities[val], labels[val]) if len(class_names) == 2 else None
    metrics = {
        split: evaluate(
            probabilities[mask], labels[mask], class_names=list(class_names), threshold=threshold,
            keys=[k for k, m in zip(keys, mask) if m],
        )
        for split, mask in (("train", train), ("val", val), ("test", test))
        if mask.any()
    }
    metrics["train"].pop("misclassified", None)
    metrics["head"] = {"l2": l2, "val_log_loss": round(val_loss, 4)}
    metrics["embeddings_computed"] = computed
    on_progress("evaluation", 1.0)
    timings["evaluation"], clock = time.perf_counter() - clock, time.perf_counter()

    def classifier_with(weights):
        return build_classifier(backbone, weights.kernel, weights.bias, base)

    classifier = classifier_with(head)
    tflite = tflite_for_head(
        build_classifier=classifier_with,
        head=head,
        template_dir=Path(cache_root) / "tflite-templates",
        template_key=f"{cache.directory.name}-{len(class_names)}classes-tf{tensorflow_version()}",
    )
    version_metadata = {
        **metadata,
        "labels": list(class_names),
        "backbone": backbone.name,
        "input_size": backbone.input_size,
        "preprocess_version": preprocess.VERSION,
        "threshold": threshold,
        "positive_label": class_names[1] if threshold is not None else None,
        "settings": settings.as_dict(),
        "metrics": metrics,
        "images": {split: [k for k, s in zip(keys, splits) if s == split] for split in ("train", "val", "test")},
    }
    paths = artifacts_write(classifier, directory=directory, tflite=tflite, metadata=version_metadata)
    on_progress("export", 0.7)
    # The reference is what evaluation measured (Keras embeddings through the head), so parity
    # proves that the served file answers as the metrics say.
    val_pixels = np.stack([preprocess.model_input(e.read(), backbone.input_size) for e in examples if e.split == "val"])
    metrics["parity_max_abs_diff"] = parity_check(
        directory, val_pixels, probabilities[val], tolerance=settings.parity_tolerance
    )
    metrics["tflite_bytes"] = paths["tflite"].stat().st_size
    metadata_write(directory, version_metadata)
    on_progress("export", 1.0)
    timings["export"] = time.perf_counter() - clock
    return TrainOutcome(metrics=metrics, threshold=threshold, paths=paths, timings=timings)


def tensorflow_version() -> str:
    import tensorflow as tf

    return tf.__version__
