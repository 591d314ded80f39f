"""The classifier's admin, one module per page family; importing them registers them."""

from classifier.admin import datasets, predictions, shadow, versions, workers

__all__ = ["datasets", "predictions", "shadow", "versions", "workers"]
