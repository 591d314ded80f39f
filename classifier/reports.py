"""Read helpers for the version page and the comparison of versions: scores, curves drawn from the
per-photo scores a training stores, and the answers that changed between versions."""

from __future__ import annotations

import numpy as np
from django.template.defaultfilters import filesizeformat
from django.utils.formats import date_format

from classifier.ml.metrics import decide, threshold_sweep
from classifier.models import ModelVersion
from classifier.selectors import images_by_sha256, worst_first
from classifier.templatetags.classifier_format import percentage

SHADES = 5  # confusion cells are shaded in this many steps of their share of the row


def version_scores(*, version: ModelVersion, split: str) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """(photo keys, true class indices, probabilities) of a split as the training stored them;
    None for versions trained before photos' scores were stored."""
    rows = (version.metrics.get(split) or {}).get("scores")
    if not rows:
        return None
    return [row[0] for row in rows], np.array([row[1] for row in rows]), np.array([row[2] for row in rows])


def version_twin(*, version: ModelVersion) -> ModelVersion | None:
    """The earliest other version trained on the same photos, labels, splits and settings."""
    fingerprint = version.metrics.get("fingerprint")
    if not fingerprint:
        return None
    return (
        version.dataset.model_versions.filter(metrics__fingerprint=fingerprint, status=ModelVersion.Status.READY)
        .exclude(pk=version.pk).order_by("number").first()
    )


def curves(*, version: ModelVersion, split: str) -> dict | None:
    """ROC, precision–recall and threshold rows of a two-label version on `split`, positive = the
    second label (the one the threshold applies to); None when they cannot be drawn."""
    scores = version_scores(version=version, split=split)
    if scores is None or len(version.labels) != 2:
        return None
    _, labels, probabilities = scores
    rows = threshold_sweep(probabilities[:, 1], labels == 1)
    return {
        "split": split,
        "positive": version.labels[1],
        "roc": [(row["fpr"], row["tpr"]) for row in rows],
        "pr": [(row["recall"], row["precision"]) for row in rows],
        "sweep": rows,
        "threshold": version.threshold if version.threshold is not None else 0.5,
    }


def threshold_table(*, curves: dict, steps: int = 10) -> list[dict]:
    """The threshold view as rows: the scores at thresholds 0.1, 0.2 … 0.9 and at the chosen one
    (marked), read off the sweep (a threshold scores like the lowest photo score at or above it)."""
    ascending = sorted(curves["sweep"], key=lambda row: row["threshold"])
    thresholds = sorted({round(step / steps, 2) for step in range(1, steps)} | {round(curves["threshold"], 4)})
    rows = []
    for threshold in thresholds:
        row = next((row for row in ascending if row["threshold"] >= threshold), ascending[-1])
        rows.append({**row, "threshold": threshold, "chosen": threshold == round(curves["threshold"], 4)})
    return rows


def confusion_rows(*, labels: list[str], confusion: list[list[int]]) -> list[dict]:
    """Each true label's row: per answer the count, its share of the row and a shade step."""
    rows = []
    for row, (label, counts) in enumerate(zip(labels, confusion)):
        total = sum(counts)
        cells = [
            {"count": count, "share": count / total if total else None,
             "shade": round(SHADES * count / total) if total else 0, "correct": column == row}
            for column, count in enumerate(counts)
        ]
        rows.append({"label": label, "cells": cells, "total": total})
    return rows


def version_report(*, version: ModelVersion) -> dict | None:
    """What the version page shows: scores per split (with coverage when it may say "unsure"),
    per-label scores, accuracy per group (worst first), calibration, shaded confusion matrices,
    curves and the threshold view, and the misclassified photos linked to their dataset images."""
    metrics = version.metrics
    splits = [split for split in ("train", "val", "test") if split in metrics]
    if not splits:
        return None
    evaluated = [split for split in ("val", "test") if split in metrics]
    keys = [item["key"] for split in evaluated for item in metrics[split]["misclassified"]]
    images = images_by_sha256(dataset=version.dataset, keys=keys)
    return {
        "splits": [
            {"name": split, "count": metrics[split]["count"], "accuracy": metrics[split]["accuracy"],
             "roc_auc": metrics[split].get("roc_auc"), "coverage": metrics[split].get("coverage"),
             "answered_accuracy": metrics[split].get("answered_accuracy")}
            for split in splits
        ],
        "per_group": [
            {"split": split,
             "rows": [{"group": group, **scores} for group, scores in worst_first(metrics[split]["per_group"])]}
            for split in evaluated if metrics[split].get("per_group")
        ],
        "calibration": metrics.get("calibration") or {},
        "per_class": [
            {"split": split, "rows": [{"label": label, **scores} for label, scores in metrics[split]["per_class"].items()]}
            for split in evaluated
        ],
        "confusions": [
            {"split": split, "rows": confusion_rows(labels=version.labels, confusion=metrics[split]["confusion"])}
            for split in evaluated
        ],
        "curves": curves(version=version, split="test" if "test" in metrics else "val"),
        "threshold_view": curves(version=version, split="val"),
        "scores_stored": any(version_scores(version=version, split=split) is not None for split in evaluated),
        "misclassified": [
            {"split": split, "image": images.get(item["key"]), "label": item["label"],
             "predicted": item["predicted"], "confidence": item["probabilities"][item["predicted"]]}
            for split in evaluated
            for item in metrics[split]["misclassified"]
        ],
        "twin": version_twin(version=version),
    }


def test_answers(*, version: ModelVersion) -> dict[str, tuple[str, str]] | None:
    """{photo key: (true label, the version's answer)} over its test split, from the scores its
    training stored; None for versions trained before those were stored."""
    scores = version_scores(version=version, split="test")
    if scores is None:
        return None
    keys, labels, probabilities = scores
    predicted = decide(probabilities, version.threshold)
    return {key: (version.labels[label], version.labels[answer]) for key, label, answer in zip(keys, labels, predicted)}


def answers_changed(*, versions: list[ModelVersion]) -> list[dict] | None:
    """The test photos that not all `versions` answer alike: the photo, its true label and each
    version's answer. None when a version has no stored per-photo scores."""
    answers = [test_answers(version=version) for version in versions]
    if any(answer is None for answer in answers):
        return None
    shared = set.intersection(*(set(answer) for answer in answers))
    changed = sorted(key for key in shared if len({answer[key][1] for answer in answers}) > 1)
    images = images_by_sha256(dataset=versions[0].dataset, keys=changed)
    return [
        {"image": images.get(key), "label": answers[0][key][0],
         "answers": [{"label": answer[key][1], "correct": answer[key][1] == answer[key][0]} for answer in answers]}
        for key in changed
    ]


def seconds_text(value: float) -> str:
    """12.3 → "12.3 s", 125 → "2 min 5 s"."""
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds} s"


def value_text(value, kind: str) -> str:
    if value is None or value == "":
        return "–"
    if kind == "percentage":
        return percentage(value)
    if kind == "bytes":
        return filesizeformat(value)
    if kind == "seconds":
        return seconds_text(value)
    if kind == "auc":
        return f"{value:.4f}"
    return str(value)


def difference_text(first: float, last: float, kind: str) -> str:
    change = last - first
    sign = "+" if change > 0 else "−" if change < 0 else "±"
    if kind == "percentage":
        return f"{sign}{abs(change) * 100:.1f} points"
    if kind == "bytes":
        return f"{sign}{filesizeformat(abs(change))}"
    if kind == "seconds":
        return f"{sign}{seconds_text(abs(change))}"
    if kind == "auc":
        return f"{sign}{abs(change):.4f}"
    return f"{sign}{abs(change):g}"


def comparison_row(name: str, values: list, kind: str = "text", better: str = "") -> dict:
    """A row of the comparison: the values formatted, and the last version's difference from the
    first, "better" or "worse" by `better` ("higher" or "lower"; blank: neither)."""
    row = {"name": name, "values": [value_text(value, kind) for value in values], "difference": "", "verdict": ""}
    first, last = values[0], values[-1]
    if kind != "text" and isinstance(first, int | float) and isinstance(last, int | float):
        row["difference"] = difference_text(first, last, kind)
        if better and last != first:
            row["verdict"] = "better" if (last > first) == (better == "higher") else "worse"
    return row


def versions_comparison(*, versions: list[ModelVersion]) -> list[dict]:
    """Rows for a side-by-side table of versions, with the difference of the last from the first."""

    def split_value(version, split, key):
        return (version.metrics.get(split) or {}).get(key)

    def worst_group(version, split) -> str | None:
        """"matcha: 50.00 % of 4": the group of lowest accuracy."""
        for group, scores in worst_first(split_value(version, split, "per_group") or {}):
            return f"{group}: {percentage(scores['accuracy'])} of {scores['count']}"
        return None

    rows = [
        comparison_row("Status", [v.get_status_display() for v in versions]),
        comparison_row("Active", ["active" if v.is_active else "–" for v in versions]),
        comparison_row("Backbone", [v.backbone for v in versions]),
        comparison_row("Trained", [date_format(v.finished_at, "DATETIME_FORMAT") if v.finished_at else None
                                   for v in versions]),
        comparison_row("Training time", [v.training_seconds for v in versions], "seconds", "lower"),
        comparison_row("Threshold", [v.threshold for v in versions], "number"),
        comparison_row("Model file (TFLite)", [v.metrics.get("tflite_bytes") for v in versions], "bytes", "lower"),
    ]
    for split in ("train", "val", "test"):
        rows.append(comparison_row(f"{split} images", [split_value(v, split, "count") for v in versions], "number"))
        rows.append(comparison_row(f"{split} accuracy", [split_value(v, split, "accuracy") for v in versions],
                                   "percentage", "higher"))
        rows.append(comparison_row(f"{split} ROC AUC", [split_value(v, split, "roc_auc") for v in versions],
                                   "auc", "higher"))
        if split != "train":
            rows.append(comparison_row(f"{split} answered (not unsure)",
                                       [split_value(v, split, "coverage") for v in versions], "percentage", "higher"))
            rows.append(comparison_row(f"{split} accuracy answered",
                                       [split_value(v, split, "answered_accuracy") for v in versions],
                                       "percentage", "higher"))
            rows.append(comparison_row(f"{split} worst group", [worst_group(v, split) for v in versions]))
    labels = sorted({label for v in versions for label in (split_value(v, "test", "per_class") or {})})
    for label in labels:
        for score, name in (("precision", "precision"), ("recall", "recall"), ("f1", "F1")):
            rows.append(comparison_row(
                f"test {name}: {label}",
                [((split_value(v, "test", "per_class") or {}).get(label) or {}).get(score) for v in versions],
                "percentage", "higher",
            ))
    return rows
