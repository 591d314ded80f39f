"""Curation admin: each action and view parses input, calls one service and reports the result.
Importing the package registers both pages."""

from dataset.admin import datasets, images  # noqa: F401 (registration)
