"""Cross-validation of a dataset: how a training configuration does on every labelled photo,
beside the plain baseline, before anyone trains a version with it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError

from classifier import selectors
from classifier.ml.backbones import BACKBONES, WeightsUnavailable
from classifier.ml.train import NotTrainable, TrainSettings
from dataset.models import Dataset, DatasetImage

BASELINE_BACKBONE = "mobilenet_v2"


def dataset_cross_validate(
    *,
    dataset: Dataset,
    folds: int = 5,
    backbone: str | None = None,
    baseline_backbone: str = BASELINE_BACKBONE,
    seed: int = 0,
    on_progress: Callable[[str, float], None] = lambda stage, fraction: None,
) -> dict:
    """Stratified k-fold figures (`classifier.ml.crossval.cross_validate`) over the dataset's
    included, labelled photos of every split, near-duplicates in one fold; ValidationError when
    the data or the settings cannot give them."""
    from classifier.ml.crossval import cross_validate

    for name in (backbone, baseline_backbone):
        if name is not None and name not in BACKBONES:
            raise ValidationError(f"Unknown backbone “{name}”; choose one of {', '.join(BACKBONES)}.")
    if folds < 2:
        raise ValidationError("Cross-validation needs at least 2 folds.")
    train_settings = TrainSettings(**({"backbone": backbone} if backbone else {}))
    examples, class_names = selectors.training_examples(dataset=dataset, splits=DatasetImage.Split.values)
    clusters = selectors.near_duplicate_clusters(dataset=dataset, keys=[example.key for example in examples])
    try:
        return cross_validate(
            examples, class_names=class_names, clusters=clusters, settings=train_settings,
            baseline_backbone=baseline_backbone, cache_root=Path(settings.ML_CACHE_DIR), folds=folds, seed=seed,
            on_progress=on_progress,
        )
    except (NotTrainable, WeightsUnavailable) as error:
        raise ValidationError(f"{dataset}: {error}") from None
