"""What a training records of its head: the metrics of each split and the calibration, from the
probabilities of every photo's plain view."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from classifier.ml import calibration
from classifier.ml.metrics import decide, evaluate, photo_scores

if TYPE_CHECKING:
    from classifier.ml.embeddings import Example
    from classifier.ml.train import FittedHead


def metrics_measure(
    examples: Sequence[Example], probabilities: np.ndarray, unscaled: np.ndarray, *, class_names: Sequence[str],
    fitted: FittedHead, masks: dict[str, np.ndarray],
) -> dict:
    """The metrics of each split that has photos (with the photos' scores on val and test, without
    the misclassified list on train), the head's L2 and its calibration."""
    labels = np.array([e.label for e in examples])
    keys = [e.key for e in examples]
    groups = [e.group for e in examples]
    metrics = {
        split: evaluate(
            probabilities[mask], labels[mask], class_names=list(class_names), threshold=fitted.threshold,
            keys=[k for k, m in zip(keys, mask) if m],
            groups=[g for g, m in zip(groups, mask) if m] if any(groups) else None,
            unsure_below=fitted.unsure_below,
        )
        for split, mask in masks.items()
        if mask.any()
    }
    metrics["train"].pop("misclassified", None)
    for split, mask in (("val", masks["val"]), ("test", masks["test"])):
        if mask.any():
            metrics[split]["scores"] = photo_scores(probabilities[mask], labels[mask], [k for k, m in zip(keys, mask) if m])
    metrics["head"] = {"l2": fitted.l2, "val_log_loss": round(fitted.val_log_loss, 4)}
    metrics["calibration"] = calibration_measure(probabilities, unscaled, labels, fitted=fitted, masks=masks)
    return metrics


def calibration_measure(
    probabilities: np.ndarray, unscaled: np.ndarray, labels: np.ndarray, *, fitted: FittedHead,
    masks: dict[str, np.ndarray],
) -> dict:
    """The temperature, the "unsure" confidence, and the calibration error of the decided class on
    val and test, before (`unscaled`) and after the temperature."""
    decided = decide(probabilities, fitted.threshold)
    return {
        "temperature": round(fitted.temperature, 4),
        "unsure_below": fitted.unsure_below,
        **{
            f"ece_{split}_{when}": round(calibration.calibration_error(
                scores[mask, decided[mask]], decided[mask] == labels[mask]), 4)
            for split, mask in (("val", masks["val"]), ("test", masks["test"])) if mask.any()
            for when, scores in (("before", unscaled), ("after", probabilities))
        },
    }
