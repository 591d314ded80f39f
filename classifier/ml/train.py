"""From labelled photos to a measured, exported model version directory.

Stages: embeddings (frozen backbone or backbones, cached) → head (linear softmax, L2 chosen on
validation; temperature, threshold and the "unsure" confidence fitted on validation) → evaluation
(test reported at them) → export (Keras, TFLite, metadata) → parity (TFLite against Keras on the
validation photos).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from classifier.ml import backbones, calibration, preprocess
from classifier.ml.embeddings import EmbeddingCache, Example, augmented_views, embeddings_compute
from classifier.ml.head import Head, head_fit, log_loss, softmax
from classifier.ml.metrics import threshold_choose
from classifier.ml.quiet import native_noise_dropped
from classifier.ml.version_metrics import metrics_measure

# Bump when `augmented_views` draws other views: cached augmented embeddings are keyed by it.
AUGMENT_VERSION = 1

# The stages `model_train` reports progress for, in order.
STAGES = ("embeddings", "head", "evaluation", "export")


class NotTrainable(ValueError):
    """The data cannot give a meaningful model; the message says what to fix."""


@dataclass(frozen=True)
class TrainSettings:
    backbone: str = backbones.DEFAULT_BACKBONE
    epochs: int = 500  # full-batch steps of the head
    l2_grid: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 3e-2)
    flip: bool = True
    augment: int = 0  # random resized crops with colour changes per training photo (embeddings.augmented_views)
    choose_threshold: bool = False  # two labels: move the threshold off 0.5 where validation clearly says so
    unsure_precision: float | None = 0.99  # wanted accuracy of answered validation photos; None: always answer
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
    unsure_below: float | None = None
    temperature: float = 1.0


@dataclass(frozen=True)
class FittedHead:
    """A head with its temperature already folded in, and the choices made on validation."""

    head: Head
    l2: float
    val_log_loss: float  # before temperature scaling
    temperature: float
    threshold: float | None
    unsure_below: float | None


def head_train(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    *,
    classes: int,
    settings: TrainSettings,
    on_progress: Callable[[float], None] = lambda fraction: None,
) -> FittedHead:
    """Fit a head per L2 in the grid and keep the one with the lowest validation log-loss; fit its
    temperature on validation, then choose there the threshold (two classes) and the confidence
    below which it answers "unsure" (`settings.unsure_precision`). NumPy only: cross-validation
    (bench/accuracy.py) runs exactly this."""
    candidates = []
    for index, l2 in enumerate(settings.l2_grid):
        head = head_fit(train_x, train_y, classes=classes, l2=l2, steps=settings.epochs)
        candidates.append((log_loss(head.probabilities(val_x), val_y), l2, head))
        on_progress((index + 1) / len(settings.l2_grid))
    val_loss, l2, head = min(candidates, key=lambda candidate: candidate[0])
    temperature = calibration.temperature_fit(head.logits(val_x), val_y)
    head = calibration.head_scaled(head, temperature)
    val_probabilities = head.probabilities(val_x)
    threshold = None if classes != 2 else threshold_choose(val_probabilities, val_y) if settings.choose_threshold else 0.5
    unsure_below = (
        None if settings.unsure_precision is None
        else calibration.unsure_below_choose(val_probabilities, val_y, threshold=threshold,
                                             precision=settings.unsure_precision)
    )
    return FittedHead(head=head, l2=l2, val_log_loss=val_loss, temperature=temperature, threshold=threshold,
                      unsure_below=unsure_below)


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


def data_fingerprint(examples: Sequence[Example], class_names: Sequence[str], settings: TrainSettings) -> str:
    """A hash of what a training learns from: each photo with its label and split, and the
    settings. Two versions with the same fingerprint were trained on the same data the same way."""
    rows = sorted((e.key, class_names[e.label], e.split) for e in examples)
    text = json.dumps({"photos": rows, "settings": settings.as_dict()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def cache_namespace(backbone: backbones.Backbone, augment: int = 0) -> str:
    """Everything a cached embedding depends on besides the photo."""
    plain = f"{backbone.name}-{backbone.input_size}-p{preprocess.VERSION}"
    return f"{plain}-aug{augment}-a{AUGMENT_VERSION}" if augment else plain


def embeddings_all(
    examples: Sequence[Example],
    *,
    backbone: backbones.Backbone | backbones.Combined,
    bases: tuple,
    cache_root: Path,
    augment: int = 0,
    on_progress: Callable[[float], None] = lambda fraction: None,
) -> tuple[np.ndarray, int]:
    """(photos, 2 + augment views, features): the plain views (as is, mirrored), then the augmented
    ones; a combined backbone's components side by side. Also how many entries were computed."""
    from classifier.ml.model import build_embedder

    jobs = [(component, base, 0) for component, base in zip(backbone.components, bases)]
    jobs += [(component, base, augment) for component, base in zip(backbone.components, bases) if augment]
    per_job, computed = [], 0
    for index, (component, base, count) in enumerate(jobs):
        vectors, fresh = embeddings_compute(
            examples, embedder=build_embedder(component, base), input_size=component.input_size,
            cache=EmbeddingCache(cache_root, cache_namespace(component, count)),
            **({"views": augmented_views(count)} if count else {}),
            on_progress=lambda done, total, index=index: on_progress((index + done / max(total, 1)) / len(jobs)),
        )
        per_job.append(vectors)
        computed = max(computed, fresh)
    plain = np.concatenate(per_job[: len(backbone.components)], axis=2)
    if not augment:
        return plain, computed
    return np.concatenate([plain, np.concatenate(per_job[len(backbone.components) :], axis=2)], axis=1), computed


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
    from classifier.ml.export import version_write
    from classifier.ml.model import build_bases

    training_data_check(examples, class_names)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    backbone = backbones.backbone_get(settings.backbone)
    bases = build_bases(backbone)
    vectors, computed = embeddings_all(
        examples, backbone=backbone, bases=bases, cache_root=cache_root, augment=settings.augment,
        on_progress=lambda fraction: on_progress("embeddings", fraction),
    )
    timings["embeddings"], clock = time.perf_counter() - clock, time.perf_counter()

    labels, masks = np.array([e.label for e in examples]), split_masks(examples)
    fitted = head_stage(vectors, labels, masks, classes=len(class_names), settings=settings,
                        on_progress=lambda fraction: on_progress("head", fraction))
    timings["head"], clock = time.perf_counter() - clock, time.perf_counter()

    probabilities = fitted.head.probabilities(vectors[:, 0])
    unscaled = softmax(fitted.head.logits(vectors[:, 0]) * fitted.temperature)  # the head's own, before the temperature
    metrics = metrics_measure(examples, probabilities, unscaled, class_names=class_names, fitted=fitted, masks=masks)
    metrics["embeddings_computed"] = computed
    on_progress("evaluation", 1.0)
    timings["evaluation"], clock = time.perf_counter() - clock, time.perf_counter()

    classifier, tflite = classifier_build(backbone, bases, fitted.head, classes=len(class_names), cache_root=cache_root)
    paths = version_write(
        classifier, tflite, directory=directory, val_examples=[e for e in examples if e.split == "val"],
        metadata=version_metadata_build(metadata, examples=examples, class_names=class_names, backbone=backbone,
                                        fitted=fitted, settings=settings, metrics=metrics),
        input_size=backbone.input_size, reference=probabilities[masks["val"]], tolerance=settings.parity_tolerance,
        on_progress=lambda fraction: on_progress("export", fraction),
    )
    timings["export"] = time.perf_counter() - clock
    return TrainOutcome(metrics=metrics, threshold=fitted.threshold, paths=paths, timings=timings,
                        unsure_below=fitted.unsure_below, temperature=fitted.temperature)


def split_masks(examples: Sequence[Example]) -> dict[str, np.ndarray]:
    """Per split ("train", "val", "test"), which photos are in it."""
    splits = np.array([e.split for e in examples])
    return {name: splits == name for name in ("train", "val", "test")}


def head_stage(
    vectors: np.ndarray, labels: np.ndarray, masks: dict[str, np.ndarray], *, classes: int, settings: TrainSettings,
    on_progress: Callable[[float], None],
) -> FittedHead:
    """`head_train` on every view of the training photos (the mirrored one only with
    `settings.flip`), choosing on the plain view of the validation photos."""
    train, val = masks["train"], masks["val"]
    views = [0, *([1] if settings.flip else []), *range(2, vectors.shape[1])]
    return head_train(
        np.concatenate([vectors[train, view] for view in views]), np.tile(labels[train], len(views)),
        vectors[val, 0], labels[val], classes=classes, settings=settings, on_progress=on_progress,
    )


def classifier_build(
    backbone: backbones.Backbone | backbones.Combined, bases: tuple, head: Head, *, classes: int, cache_root: Path
) -> tuple:
    """The Keras classifier of `head` on the backbone, and its TFLite file (made from a cached
    template per backbone and number of classes)."""
    from classifier.ml.export import tflite_for_head
    from classifier.ml.model import build_classifier

    def classifier_with(weights):
        return build_classifier(backbone, weights.kernel, weights.bias, bases)

    classifier = classifier_with(head)
    namespaces = "+".join(cache_namespace(component) for component in backbone.components)
    tflite = tflite_for_head(
        build_classifier=classifier_with,
        head=head,
        template_dir=Path(cache_root) / "tflite-templates",
        template_key=f"{namespaces}-{classes}classes-tf{tensorflow_version()}",
    )
    return classifier, tflite


def version_metadata_build(
    metadata: dict, *, examples: Sequence[Example], class_names: Sequence[str],
    backbone: backbones.Backbone | backbones.Combined, fitted: FittedHead, settings: TrainSettings, metrics: dict,
) -> dict:
    """A version's metadata.json: the caller's `metadata`, what serving needs to read and decide,
    the settings, `metrics` (the same dict, so what joins it later is written too) and the photos
    of each split."""
    return {
        **metadata,
        "labels": list(class_names),
        "backbone": backbone.name,
        "input_size": backbone.input_size,
        "preprocess_version": preprocess.VERSION,
        "threshold": fitted.threshold,
        "unsure_below": fitted.unsure_below,
        "temperature": fitted.temperature,
        "positive_label": class_names[1] if fitted.threshold is not None else None,
        "settings": settings.as_dict(),
        "metrics": metrics,
        "images": {split: [e.key for e in examples if e.split == split] for split in ("train", "val", "test")},
    }


def tensorflow_version() -> str:
    import tensorflow as tf

    return tf.__version__
