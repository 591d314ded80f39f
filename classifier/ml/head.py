"""The linear softmax head, trained on cached embeddings with NumPy.

A linear head keeps class activation maps exact (see model.py). Training it on a few thousand
cached vectors takes well under a second, is deterministic, and needs no TensorFlow; the weights
are then set into the Keras graph that is exported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Head:
    kernel: np.ndarray  # (features, classes)
    bias: np.ndarray  # (classes,)

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        return embeddings @ self.kernel + self.bias

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        return softmax(self.logits(embeddings))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def balanced_class_weights(labels: np.ndarray, classes: int) -> np.ndarray:
    """Weights that make every class count as much as the others, whatever its size."""
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    return np.where(counts > 0, counts.sum() / (classes * np.maximum(counts, 1)), 0.0)


def head_fit(
    embeddings: np.ndarray,
    labels: np.ndarray,
    *,
    classes: int,
    l2: float,
    steps: int = 500,
    learning_rate: float = 0.05,
) -> Head:
    """Full-batch Adam on the class-weighted cross-entropy plus L2; starts from zero, so deterministic.

    NumPy's BLAS runs on one thread here: products this small gain nothing from a second, and
    threads that wait for a busy core (a cluster answering photos beside the training) make
    the fit's time erratic. (threadpoolctl is a training requirement: the admin imports this
    module on serving machines too.)"""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return adam_fit(embeddings, labels, classes=classes, l2=l2, steps=steps, learning_rate=learning_rate)


def adam_fit(embeddings: np.ndarray, labels: np.ndarray, *, classes: int, l2: float, steps: int,
             learning_rate: float) -> Head:
    x = embeddings.astype(np.float32)
    targets = np.eye(classes, dtype=np.float32)[labels]
    sample_weights = balanced_class_weights(labels, classes)[labels].astype(np.float32)
    sample_weights /= sample_weights.sum()
    kernel, bias = np.zeros((x.shape[1], classes), np.float32), np.zeros(classes, np.float32)
    moments = [[np.zeros_like(kernel), np.zeros_like(kernel)], [np.zeros_like(bias), np.zeros_like(bias)]]
    beta1, beta2 = 0.9, 0.999
    for step in range(1, steps + 1):
        error = (softmax(x @ kernel + bias) - targets) * sample_weights[:, None]
        gradients = (x.T @ error + l2 * kernel, error.sum(axis=0))
        for parameter, gradient, (mean, variance) in zip((kernel, bias), gradients, moments):
            mean *= beta1
            mean += (1 - beta1) * gradient
            variance *= beta2
            variance += (1 - beta2) * gradient**2
            corrected = mean / (1 - beta1**step)
            parameter -= learning_rate * corrected / (np.sqrt(variance / (1 - beta2**step)) + 1e-8)
    return Head(kernel=kernel.astype(np.float32), bias=bias.astype(np.float32))


def log_loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean())
