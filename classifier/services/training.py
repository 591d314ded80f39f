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
from classifier.ml.train import NotTrainable, TrainOutcome, TrainSettings, data_fingerprint, training_data_check
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
    started = model_version_start(version=version, directory=directory)
    progress = TrainingProgress(version=version, started=started, on_progress=on_progress)
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
    model_version_ready(
        version=version, outcome=outcome, labels=class_names, started=started,
        fingerprint=data_fingerprint(examples, class_names, train_settings),
    )
    progress.stage_end(time.perf_counter())
    version.refresh_from_db()
    metrics.training_finished(version=version)
    field_set_score_request(dataset=version.dataset)
    return version


def model_version_start(*, version: ModelVersion, directory: Path) -> float:
    """Empty the version's directory and mark it training from now; the start on the
    `time.perf_counter` clock."""
    shutil.rmtree(directory, ignore_errors=True)
    started = time.perf_counter()
    ModelVersion.objects.filter(pk=version.pk).update(
        status=ModelVersion.Status.TRAINING, started_at=timezone.now(), stage="", progress=0.0, error=""
    )
    return started


class TrainingProgress:
    """The `on_progress` of a training: it passes each report on to the caller's, saves the stage
    and fraction on the version at most every PROGRESS_INTERVAL_SECONDS (and at each 100 %), and
    records each stage's time as the next one begins."""

    def __init__(self, *, version: ModelVersion, started: float, on_progress: Callable[[str, float], None] | None):
        self.version, self.on_progress = version, on_progress
        self.last_saved = 0.0
        self.stage, self.stage_started = "", started

    def __call__(self, stage: str, fraction: float) -> None:
        now = time.perf_counter()
        if stage != self.stage:
            self.stage_end(now)
            self.stage, self.stage_started = stage, now
        if self.on_progress:
            self.on_progress(stage, fraction)
        if now - self.last_saved >= PROGRESS_INTERVAL_SECONDS or fraction >= 1.0:
            self.last_saved = now
            ModelVersion.objects.filter(pk=self.version.pk).update(stage=stage, progress=round(fraction, 3))

    def stage_end(self, now: float) -> None:
        """Record the time of the stage under way, if one is."""
        if self.stage:
            metrics.training_stage(version=self.version, stage=self.stage, seconds=now - self.stage_started)


def model_version_ready(
    *, version: ModelVersion, outcome: TrainOutcome, labels: list[str], fingerprint: str, started: float
) -> None:
    """Record a finished training: its labels, metrics, threshold and time."""
    ModelVersion.objects.filter(pk=version.pk).update(
        status=ModelVersion.Status.READY,
        stage="",
        progress=1.0,
        labels=list(labels),
        # stage timings estimate the next training's time left; the fingerprint finds its twins
        metrics={
            **outcome.metrics,
            "timings": {stage: round(seconds, 2) for stage, seconds in outcome.timings.items()},
            "fingerprint": fingerprint,
        },
        threshold=outcome.threshold,
        training_seconds=round(time.perf_counter() - started, 2),
        finished_at=timezone.now(),
    )


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
