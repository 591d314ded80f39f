"""Read helpers for model versions and the data a training uses."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db.models import QuerySet

from classifier.ml.embeddings import Example
from classifier.models import ModelVersion
from dataset.models import Dataset, DatasetImage

TRAINING_SPLITS = (DatasetImage.Split.TRAIN, DatasetImage.Split.VAL, DatasetImage.Split.TEST)


def training_examples(*, dataset: Dataset) -> tuple[list[Example], list[str]]:
    """Labelled, included photos in train/val/test, and the class names in output order.

    Classes are the labels that have such photos, sorted by name, so the order is stable.
    """
    images = list(
        dataset.images.filter(excluded=False, label__isnull=False, split__in=TRAINING_SPLITS)
        .select_related("label")
        .order_by("sha256")
    )
    class_names = sorted({image.label.name for image in images})
    index = {name: position for position, name in enumerate(class_names)}
    examples = [
        Example(key=image.sha256, read=file_reader(image), label=index[image.label.name], split=image.split)
        for image in images
    ]
    return examples, class_names


def file_reader(image: DatasetImage):
    def read() -> bytes:
        with image.file.open("rb") as file:
            return file.read()

    return read


def active_version(*, dataset: Dataset) -> ModelVersion | None:
    return dataset.model_versions.filter(is_active=True).first()


def versions_of(*, dataset: Dataset) -> QuerySet[ModelVersion]:
    return dataset.model_versions.order_by("-number")


def images_by_sha256(*, dataset: Dataset, keys: list[str]) -> dict[str, DatasetImage]:
    """The dataset images behind the keys a version's metrics name (some may have been deleted)."""
    return {image.sha256: image for image in dataset.images.filter(sha256__in=keys).select_related("label")}


def ready_version(*, dataset: Dataset, number: int | None = None) -> ModelVersion:
    """The given ready version, or the active one; LookupError with a sentence otherwise."""
    if number is None:
        version = active_version(dataset=dataset)
        if version is None:
            raise LookupError(f"{dataset} has no active model version; train one (manage.py train --activate).")
        return version
    version = dataset.model_versions.filter(number=number).first()
    if version is None:
        raise LookupError(f"{dataset} has no version {number}.")
    if version.status != ModelVersion.Status.READY:
        raise LookupError(f"Version {number} of {dataset} is {version.get_status_display().lower()}, not ready.")
    return version


def artifact_path(*, version: ModelVersion) -> Path:
    return Path(settings.MEDIA_ROOT) / version.artifact_dir
