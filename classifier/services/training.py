"""Model versions: request a training, run it, activate or roll back. Nothing here imports TensorFlow
at module level; `model_version_train` reaches it through classifier.ml when a training runs."""


from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from classifier import metrics, selectors
from classifier.candidates import candidate_report
from classifier.ml.backbones import BACKBONES, WeightsUnavailable
from classifier.ml.train import NotTrainable, TrainSettings, data_fingerprint, training_data_check
from classifier.models import Activation, ModelVersion
from classifier.services.field_set import field_set_score_request
from dataset.models import Dataset

logger = logging.getLogger(__name__)

TRAINING_TASK = "classifier.tasks.train_model_version"

PROGRESS_INTERVAL_SECONDS = 0.5


def model_version_request(
    *,
    dataset: Dataset,
    backbone: str | None = None,
    epochs: int | None = None,
    user=None,
    enqueue: bool = True,
    activate_when_better: bool = False,
) -> ModelVersion:
    """Number and record a new version, refusing data that cannot train; queue its training."""
    train_settings = TrainSettings(
        **{key: value for key, value in (("backbone", backbone), ("epochs", epochs)) if value is not None}
    )
    if train_settings.backbone not in BACKBONES:
        raise ValidationError(f"Unknown backbone “{train_settings.backbone}”; choose one of {', '.join(BACKBONES)}.")
    if train_settings.epochs < 1:
        raise ValidationError("Epochs must be at least 1.")
    examples, class_names = selectors.training_examples(dataset=dataset)
    try:
        training_data_check(examples, class_names)
    except NotTrainable as error:
        raise ValidationError(f"{dataset}: {error}") from None
    with transaction.atomic():
        Dataset.objects.select_for_update().get(pk=dataset.pk)  # numbers are handed out one at a time
        number = (dataset.model_versions.aggregate(last=Max("number"))["last"] or 0) + 1
        version = ModelVersion.objects.create(
            dataset=dataset,
            number=number,
            backbone=train_settings.backbone,
            training_settings=train_settings.as_dict(),
            artifact_dir=f"models/{dataset.slug}/{number}",
            created_by=user if user is not None and user.is_authenticated else None,
            activate_when_better=activate_when_better,
        )
        if enqueue:
            transaction.on_commit(lambda: model_version_enqueue(version_id=version.pk))
    return version


def model_version_enqueue(*, version_id: int) -> None:
    from django_q.tasks import async_task

    async_task(TRAINING_TASK, version_id, cluster=settings.TRAINING_CLUSTER, task_name=f"train-version-{version_id}")


def model_version_train(
    *, version: ModelVersion, on_progress: Callable[[str, float], None] | None = None
) -> ModelVersion:
    """Run the training of a queued version in this process; failures are recorded, not raised.

    Idempotent for the queue: a ready or failed version is left alone; a version still in
    "training" when its task arrives again starts over from a clean directory (one whose worker
    died and is never delivered again is failed by `model_versions_fail_stale`).
    """
    from classifier.ml.export import ParityError
    from classifier.ml.train import model_train

    version.refresh_from_db()
    if version.status in (ModelVersion.Status.READY, ModelVersion.Status.FAILED):
        return version
    directory = selectors.artifact_path(version=version)
    shutil.rmtree(directory, ignore_errors=True)
    started = time.perf_counter()
    ModelVersion.objects.filter(pk=version.pk).update(
        status=ModelVersion.Status.TRAINING, started_at=timezone.now(), stage="", progress=0.0, error=""
    )
    last_saved = [0.0]
    stage_now = ["", started]  # the stage under way and when it began: each logs a line as it ends

    def progress(stage: str, fraction: float) -> None:
        now = time.perf_counter()
        if stage != stage_now[0]:
            if stage_now[0]:
                metrics.training_stage(version=version, stage=stage_now[0], seconds=now - stage_now[1])
            stage_now[:] = [stage, now]
        if on_progress:
            on_progress(stage, fraction)
        if now - last_saved[0] >= PROGRESS_INTERVAL_SECONDS or fraction >= 1.0:
            last_saved[0] = now
            ModelVersion.objects.filter(pk=version.pk).update(stage=stage, progress=round(fraction, 3))

    examples, class_names = selectors.training_examples(dataset=version.dataset)
    train_settings = TrainSettings.from_dict(version.training_settings)
    try:
        outcome = model_train(
            examples=examples,
            class_names=class_names,
            settings=train_settings,
            cache_root=Path(settings.ML_CACHE_DIR),
            directory=directory,
            metadata={"dataset": version.dataset.slug, "version": version.number},
            on_progress=progress,
        )
    except (NotTrainable, WeightsUnavailable, ParityError, OSError, ValueError) as error:
        return model_version_fail(version=version, message=str(error), started=started)
    except Exception as error:  # a bug must still leave a failed version, not one training forever
        model_version_fail(version=version, message=f"{type(error).__name__}: {error}", started=started)
        raise
    ModelVersion.objects.filter(pk=version.pk).update(
        status=ModelVersion.Status.READY,
        stage="",
        progress=1.0,
        labels=list(class_names),
        # stage timings estimate the next training's time left; the fingerprint finds its twins
        metrics={
            **outcome.metrics,
            "timings": {stage: round(seconds, 2) for stage, seconds in outcome.timings.items()},
            "fingerprint": data_fingerprint(examples, class_names, train_settings),
        },
        threshold=outcome.threshold,
        training_seconds=round(time.perf_counter() - started, 2),
        finished_at=timezone.now(),
    )
    if stage_now[0]:
        metrics.training_stage(version=version, stage=stage_now[0], seconds=time.perf_counter() - stage_now[1])
    version.refresh_from_db()
    metrics.training_finished(version=version)
    field_set_score_request(dataset=version.dataset)
    return version


def model_version_fail(*, version: ModelVersion, message: str, started: float | None) -> ModelVersion:
    """Record why a training failed and remove what it had written; the active version stays."""
    shutil.rmtree(selectors.artifact_path(version=version), ignore_errors=True)
    ModelVersion.objects.filter(pk=version.pk).update(
        status=ModelVersion.Status.FAILED,
        error=message,
        training_seconds=None if started is None else round(time.perf_counter() - started, 2),
        finished_at=timezone.now(),
    )
    version.refresh_from_db()
    metrics.training_finished(version=version)
    return version


class WorseThanActive(ValidationError):
    """The version is right less often than the active one on the test split or the field set:
    activating it needs a second, explicit confirmation."""

    def __init__(self, report):
        super().__init__(report.worse_sentence(), code="worse_than_active")
        self.report = report


def model_version_activate(*, version: ModelVersion, user=None, confirmed_worse: bool = False) -> ModelVersion:
    """Make `version` the one that answers for its dataset (also how a rollback is done), and
    record who did it. A version that scores worse than the active one (`candidate_report`) is
    refused with WorseThanActive unless `confirmed_worse`. A version in shadow stops shadowing as
    it becomes active."""
    if version.status != ModelVersion.Status.READY:
        raise ValidationError(f"Version {version.number} is {version.get_status_display().lower()}, not ready.")
    report = candidate_report(version=version)
    worse = report is not None and bool(report.worse_on)
    if worse and not confirmed_worse:
        raise WorseThanActive(report)
    with transaction.atomic():
        Dataset.objects.select_for_update().get(pk=version.dataset_id)
        previous = ModelVersion.objects.filter(dataset=version.dataset_id, is_active=True).first()
        ModelVersion.objects.filter(dataset=version.dataset_id, is_active=True).exclude(pk=version.pk).update(
            is_active=False
        )
        ModelVersion.objects.filter(pk=version.pk).update(is_active=True, is_shadow=False)
        if previous is None or previous.pk != version.pk:
            Activation.objects.create(version=version, previous=previous, user=user, confirmed_worse=worse)
    version.refresh_from_db()
    return version
