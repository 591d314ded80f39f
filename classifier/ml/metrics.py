"""Evaluation: decisions from probabilities, accuracy, per-class and per-group scores, confusion,
ROC AUC, and how much a version answers when it may say "unsure"."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ANSWERED, UNSURE = "answered", "unsure"

# Move the two-class threshold off 0.5 only when validation shows a gain of at least this many
# images: on a small validation split a single image would otherwise pick an extreme threshold.
MIN_THRESHOLD_GAIN = 2


def decide(probabilities: np.ndarray, threshold: float | None) -> np.ndarray:
    """Class indices: argmax, or for two classes class 1 when its probability ≥ threshold."""
    if threshold is None or probabilities.shape[1] != 2:
        return probabilities.argmax(axis=1)
    return (probabilities[:, 1] >= threshold).astype(int)


def answered(probabilities: np.ndarray, threshold: float | None, unsure_below: float | None) -> np.ndarray:
    """Per photo, whether the probability of its decided class reaches `unsure_below` (None: always)."""
    if not unsure_below:
        return np.ones(len(probabilities), dtype=bool)
    predicted = decide(probabilities, threshold)
    return probabilities[np.arange(len(probabilities)), predicted] >= unsure_below


def decision(probabilities: Sequence[float], metadata: dict) -> str:
    """ANSWERED or UNSURE for one photo's probabilities (in the order of metadata["labels"]), under
    the "threshold" and "unsure_below" of a version's metadata.json; a version without
    "unsure_below" always answers."""
    row = np.asarray(probabilities, dtype=np.float64)[None]
    return ANSWERED if answered(row, metadata.get("threshold"), metadata.get("unsure_below"))[0] else UNSURE


def threshold_choose(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The threshold on P(class 1) with the most correct validation answers (ties: nearest 0.5)."""
    scores = np.sort(np.unique(probabilities[:, 1]))
    candidates = np.concatenate([[0.5], (scores[:-1] + scores[1:]) / 2]) if len(scores) > 1 else np.array([0.5])
    correct = np.array([((probabilities[:, 1] >= t).astype(int) == labels).sum() for t in candidates])
    best = correct.max()
    if best - correct[0] < MIN_THRESHOLD_GAIN:
        return 0.5
    winners = candidates[correct == best]
    return float(winners[np.argmin(np.abs(winners - 0.5))])


def roc_auc(scores: np.ndarray, positives: np.ndarray) -> float | None:
    """Probability that a random positive outranks a random negative (Mann–Whitney U)."""
    positives = positives.astype(bool)
    n_pos, n_neg = positives.sum(), (~positives).sum()
    if n_pos == 0 or n_neg == 0:
        return None
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks for ties
    start = 0
    for end in range(1, len(scores) + 1):
        if end == len(scores) or sorted_scores[end] != sorted_scores[start]:
            ranks[order[start:end]] = (start + end + 1) / 2
            start = end
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def evaluate(
    probabilities: np.ndarray,
    labels: np.ndarray,
    *,
    class_names: list[str],
    threshold: float | None,
    keys: list[str] | None = None,
    groups: Sequence[str | None] | None = None,
    unsure_below: float | None = None,
) -> dict:
    """Everything a curator reads on a version's page, as plain JSON-ready values.

    With `groups` (what each photo shows), accuracy per group, worst first. With `unsure_below`,
    the share of photos answered ("coverage") and the accuracy of those answers."""
    predicted = decide(probabilities, threshold)
    classes = len(class_names)
    confusion = np.zeros((classes, classes), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    result = {
        "count": len(labels),
        "accuracy": round(float((predicted == labels).mean()), 4) if len(labels) else None,
        "per_class": class_scores(confusion, class_names),
        "confusion": confusion.tolist(),
        "misclassified": [
            {
                "key": keys[i] if keys else i,
                "label": class_names[labels[i]],
                "predicted": class_names[predicted[i]],
                "probabilities": {name: round(float(p), 4) for name, p in zip(class_names, probabilities[i])},
            }
            for i in np.flatnonzero(predicted != labels)
        ],
    }
    if classes == 2:
        auc = roc_auc(probabilities[:, 1], labels == 1)
        result["roc_auc"] = None if auc is None else round(auc, 4)
    if groups is not None:
        result["per_group"] = group_accuracy(predicted == labels, groups)
    if unsure_below is not None and len(labels):
        answer = answered(probabilities, threshold, unsure_below)
        result["coverage"] = round(float(answer.mean()), 4)
        result["answered_accuracy"] = round(float((predicted == labels)[answer].mean()), 4) if answer.any() else None
    return result


def class_scores(confusion: np.ndarray, class_names: list[str]) -> dict[str, dict]:
    """{class: {"precision", "recall", "f1", "support"}} from a confusion matrix (rows: true class);
    0.0 where a ratio has nothing to count."""
    scores = {}
    for index, name in enumerate(class_names):
        true_positive = confusion[index, index]
        predicted_count, actual_count = confusion[:, index].sum(), confusion[index, :].sum()
        precision = true_positive / predicted_count if predicted_count else 0.0
        recall = true_positive / actual_count if actual_count else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[name] = {
            "precision": round(float(precision), 4), "recall": round(float(recall), 4),
            "f1": round(float(f1), 4), "support": int(actual_count),
        }
    return scores


def group_accuracy(correct: np.ndarray, groups: Sequence[str | None]) -> dict[str, dict]:
    """{group: {"count", "accuracy"}} for the photos that have a group, lowest accuracy first."""
    names = np.array([group or "" for group in groups])
    scores = {
        name: {"count": int((names == name).sum()), "accuracy": round(float(correct[names == name].mean()), 4)}
        for name in set(names.tolist()) - {""}
    }
    return dict(sorted(scores.items(), key=lambda item: (item[1]["accuracy"], -item[1]["count"], item[0])))


def photo_scores(probabilities: np.ndarray, labels: np.ndarray, keys: Sequence[str]) -> list[list]:
    """[key, true class index, [probability per class]] per photo, probabilities to 4 places: what
    curves, threshold views and comparisons of versions are drawn from."""
    return [
        [key, int(label), [round(float(p), 4) for p in row]]
        for key, label, row in zip(keys, labels, probabilities)
    ]


def threshold_sweep(scores: np.ndarray, positives: np.ndarray) -> list[dict]:
    """At each distinct score taken as the threshold on P(positive), highest first after the
    threshold infinity (nothing called positive), the rates a curve or a threshold view needs: true
    and false positive rate, precision (1.0 where nothing is called positive), recall and accuracy.
    Any threshold between two distinct scores scores like the higher one."""
    positives = positives.astype(bool)
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    rows = []
    for threshold in [float("inf"), *np.unique(scores)[::-1].tolist()]:
        called = scores >= threshold
        true_positive = int((called & positives).sum())
        false_positive = int((called & ~positives).sum())
        rows.append({
            "threshold": float(threshold),
            "tpr": true_positive / n_pos if n_pos else 0.0,
            "fpr": false_positive / n_neg if n_neg else 0.0,
            "precision": true_positive / (true_positive + false_positive) if true_positive + false_positive else 1.0,
            "recall": true_positive / n_pos if n_pos else 0.0,
            "accuracy": float((called == positives).mean()) if len(scores) else 0.0,
        })
    return rows
