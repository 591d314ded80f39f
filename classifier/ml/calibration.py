"""Calibrated confidence and the confidence below which a version answers "unsure".

Temperature scaling divides the head's logits by one number T fitted on validation photos: it
changes how sure the model says it is, never which class wins, and T folds into the head's
weights (kernel / T, bias / T), so the served file gives calibrated probabilities as they are.
"""

from __future__ import annotations

import numpy as np

from classifier.ml.head import Head
from classifier.ml.metrics import decide

ECE_BINS = 15
TEMPERATURE_RANGE = (0.05, 20.0)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    scaled = logits / temperature
    shifted = scaled - scaled.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=1))
    return float((log_norm - shifted[np.arange(len(labels)), labels]).mean())


def temperature_fit(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in TEMPERATURE_RANGE minimising the mean negative log-likelihood of softmax(logits / T).

    The likelihood is unimodal in log T, so a golden-section search on log T finds it."""
    low, high = np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1])
    ratio = (np.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    loss_a, loss_b = nll(logits, labels, np.exp(a)), nll(logits, labels, np.exp(b))
    for _ in range(60):
        if loss_a < loss_b:
            high, b, loss_b = b, a, loss_a
            a = high - ratio * (high - low)
            loss_a = nll(logits, labels, np.exp(a))
        else:
            low, a, loss_a = a, b, loss_b
            b = low + ratio * (high - low)
            loss_b = nll(logits, labels, np.exp(b))
    return float(np.exp((low + high) / 2))


def head_scaled(head: Head, temperature: float) -> Head:
    """The head whose probabilities are softmax(logits / temperature)."""
    return Head(kernel=(head.kernel / temperature).astype(np.float32), bias=(head.bias / temperature).astype(np.float32))


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, *, threshold: float | None = None, bins: int = ECE_BINS
) -> float:
    """Expected calibration error where confidence is the probability of the class decided
    (`metrics.decide`); see `calibration_error`."""
    if len(labels) == 0:
        return 0.0
    predicted = decide(probabilities, threshold)
    return calibration_error(probabilities[np.arange(len(labels)), predicted], predicted == labels, bins=bins)


def calibration_error(confidence: np.ndarray, correct: np.ndarray, *, bins: int = ECE_BINS) -> float:
    """Σ over equal-width confidence bins of (share of answers) × |accuracy − mean confidence|."""
    which = np.clip(np.digitize(confidence, np.linspace(0, 1, bins + 1)[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for index in range(bins):
        members = which == index
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


def unsure_below_choose(
    probabilities: np.ndarray, labels: np.ndarray, *, threshold: float | None, precision: float
) -> float:
    """The lowest confidence from which the answered validation photos are at least `precision`
    right: photos whose decided class has a lower probability are "unsure". 0.0 when every answer
    already is; above the highest confidence seen (all unsure) when no cut reaches it."""
    predicted = decide(probabilities, threshold)
    confidence = probabilities[np.arange(len(labels)), predicted]
    correct = predicted == labels
    order = np.argsort(-confidence, kind="mergesort")
    confidence, correct = confidence[order], correct[order]
    right = np.cumsum(correct)
    answered = np.arange(1, len(labels) + 1)
    reached = right / answered >= precision
    # a cut may only fall between two different confidences
    cuttable = np.append(confidence[1:] < confidence[:-1], True)
    candidates = np.flatnonzero(reached & cuttable)
    if len(candidates) == 0:
        return float(np.nextafter(confidence[0], 2.0)) if len(confidence) else 0.0
    last = candidates[-1]
    if last == len(labels) - 1:
        return 0.0
    return float(confidence[last])
