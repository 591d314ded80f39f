"""Stratified k-fold cross-validation of a training configuration, beside the plain baseline.

Every labelled photo is tested once, by a head trained without it: a better guide than one small
test split. Near-duplicates (`clusters`: one index per photo, the same for photos that are the
same picture) stay in one fold, so a photo is never tested by a head that saw its copy. Each fold
trains as `model_train` does (`head_train`: L2, temperature, threshold and the "unsure"
confidence chosen on an inner validation split of the other folds); the baseline is frozen
embeddings + logistic regression on all of the other folds, no augmentation, threshold 0.5.
Embeddings come from the same cache as training. No Django here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier.ml import backbones, calibration, metrics
from classifier.ml.embeddings import Example
from classifier.ml.head import head_fit, softmax
from classifier.ml.train import NotTrainable, TrainSettings, embeddings_all, head_train

BASELINE_L2 = 1e-4
INNER_VALIDATION_FOLDS = 6  # one sixth of the other folds chooses L2, temperature and "unsure"


@dataclass(frozen=True)
class OutOfFold:
    """Each photo's answer from the fold that held it out."""

    raw: np.ndarray  # probabilities before temperature scaling
    calibrated: np.ndarray
    predicted: np.ndarray
    answered: np.ndarray  # False where the answer is "unsure"


def folds_assign(labels: np.ndarray, clusters: np.ndarray, *, folds: int, seed: int) -> np.ndarray:
    """Fold index per photo: whole clusters, largest first (ties shuffled by `seed`), each to the
    fold with the fewest photos of its label so far, so every fold has about each label's share."""
    rng = np.random.default_rng(seed)
    _, clusters = np.unique(clusters, return_inverse=True)
    sizes = np.bincount(clusters)
    order = sorted(rng.permutation(len(sizes)), key=lambda cluster: -sizes[cluster])
    counts = np.zeros((folds, labels.max() + 1), int)
    fold_of = np.empty(len(labels), int)
    for cluster in order:
        members = np.flatnonzero(clusters == cluster)
        label = np.bincount(labels[members]).argmax()
        fold = int(np.lexsort((counts.sum(axis=1), counts[:, label]))[0])
        fold_of[members] = fold
        counts[fold] += np.bincount(labels[members], minlength=counts.shape[1])
    return fold_of


def model_cross_validate(
    vectors: np.ndarray, labels: np.ndarray, *, fold_of: np.ndarray, clusters: np.ndarray, classes: int,
    settings: TrainSettings, seed: int,
) -> OutOfFold:
    """Out-of-fold answers of heads trained as `model_train` trains them."""
    n = len(labels)
    raw, calibrated = np.zeros((n, classes)), np.zeros((n, classes))
    predicted, answered = np.zeros(n, int), np.ones(n, bool)
    views = [0, *([1] if settings.flip else []), *range(2, vectors.shape[1])]
    for fold in range(fold_of.max() + 1):
        test, rest = np.flatnonzero(fold_of == fold), np.flatnonzero(fold_of != fold)
        inner = folds_assign(labels[rest], clusters[rest], folds=INNER_VALIDATION_FOLDS, seed=seed + fold) == 0
        train, val = rest[~inner], rest[inner]
        fitted = head_train(
            np.concatenate([vectors[train, view] for view in views]), np.tile(labels[train], len(views)),
            vectors[val, 0], labels[val], classes=classes, settings=settings,
        )
        calibrated[test] = fitted.head.probabilities(vectors[test, 0])
        raw[test] = softmax(fitted.head.logits(vectors[test, 0]) * fitted.temperature)
        predicted[test] = metrics.decide(calibrated[test], fitted.threshold)
        answered[test] = metrics.answered(calibrated[test], fitted.threshold, fitted.unsure_below)
    return OutOfFold(raw=raw, calibrated=calibrated, predicted=predicted, answered=answered)


def baseline_cross_validate(vectors: np.ndarray, labels: np.ndarray, *, fold_of: np.ndarray, classes: int) -> OutOfFold:
    """Out-of-fold answers of logistic regression on the plain views: no validation, no
    calibration, threshold 0.5 (argmax), always an answer."""
    probabilities = np.zeros((len(labels), classes))
    for fold in range(fold_of.max() + 1):
        test, rest = fold_of == fold, fold_of != fold
        head = head_fit(vectors[rest, 0], labels[rest], classes=classes, l2=BASELINE_L2)
        probabilities[test] = head.probabilities(vectors[test, 0])
    predicted = metrics.decide(probabilities, 0.5 if classes == 2 else None)
    return OutOfFold(raw=probabilities, calibrated=probabilities, predicted=predicted,
                     answered=np.ones(len(labels), bool))


def summary(run: OutOfFold, labels: np.ndarray, *, class_names: Sequence[str], groups: Sequence[str | None]) -> dict:
    """Overall, per-label and per-group (worst first) accuracy, calibration error before and after
    temperature scaling, and the share answered with the accuracy of those answers."""
    correct = run.predicted == labels
    rows = np.arange(len(labels))
    return {
        "accuracy": float(correct.mean()),
        "per_label": {
            name: {"count": int((labels == index).sum()), "accuracy": float(correct[labels == index].mean())}
            for index, name in enumerate(class_names) if (labels == index).any()
        },
        "per_group": metrics.group_accuracy(correct, groups),
        "ece_before": calibration.calibration_error(run.raw[rows, run.predicted], correct),
        "ece_after": calibration.calibration_error(run.calibrated[rows, run.predicted], correct),
        "coverage": float(run.answered.mean()),
        "answered_accuracy": float(correct[run.answered].mean()) if run.answered.any() else None,
    }


def cross_validate(
    examples: Sequence[Example],
    *,
    class_names: Sequence[str],
    clusters: Sequence[int],
    settings: TrainSettings,
    baseline_backbone: str,
    cache_root: Path,
    folds: int = 5,
    seed: int = 0,
    on_progress: Callable[[str, float], None] = lambda stage, fraction: None,
) -> dict:
    """{"model": summary, "baseline": summary, "folds", "photos", "clusters"} over `examples`
    (their splits are ignored: every photo is in one test fold)."""
    from classifier.ml.model import build_bases

    labels = np.array([example.label for example in examples])
    clusters = np.asarray(clusters)
    counts = np.bincount(labels, minlength=len(class_names))
    if len(class_names) < 2 or counts.min() < folds:
        raise NotTrainable(
            f"Cross-validation in {folds} folds needs at least {folds} photos of each of 2 labels or more; "
            + ", ".join(f"{name}: {count}" for name, count in zip(class_names, counts)) + "."
        )
    fold_of = folds_assign(labels, clusters, folds=folds, seed=seed)
    groups = [example.group for example in examples]
    result = {"folds": folds, "photos": len(examples), "clusters": len(np.unique(clusters))}
    configurations = (("model", settings.backbone, settings.augment), ("baseline", baseline_backbone, 0))
    for name, backbone_name, augment in configurations:
        backbone = backbones.backbone_get(backbone_name)
        vectors, _ = embeddings_all(
            examples, backbone=backbone, bases=build_bases(backbone), cache_root=cache_root, augment=augment,
            on_progress=lambda fraction, name=name: on_progress(f"{name} embeddings", fraction),
        )
        if name == "model":
            run = model_cross_validate(vectors, labels, fold_of=fold_of, clusters=clusters,
                                       classes=len(class_names), settings=settings, seed=seed)
        else:
            run = baseline_cross_validate(vectors, labels, fold_of=fold_of, classes=len(class_names))
        result[name] = {"backbone": backbone.name, **summary(run, labels, class_names=class_names, groups=groups)}
    return result
