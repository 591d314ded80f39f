"""Read helpers for model versions and the data a training uses."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from functools import partial
from pathlib import Path

from django.conf import settings
from django.db.models import Exists, F, OuterRef, QuerySet, Subquery
from django.utils import timezone

from classifier.ml.embeddings import Example
from classifier.models import ModelVersion, PredictionJob
from dataset.models import Dataset, DatasetImage
from dataset.selectors import file_read, near_duplicate_groups

logger = logging.getLogger(__name__)
SLUG = re.compile(r"[-a-zA-Z0-9_]+")
TRAINING_SPLITS = (DatasetImage.Split.TRAIN, DatasetImage.Split.VAL, DatasetImage.Split.TEST)


def training_examples(*, dataset: Dataset, splits=TRAINING_SPLITS) -> tuple[list[Example], list[str]]:
    """Labelled, included photos in `splits` (train/val/test), and the class names in output order.

    Classes are the labels that have such photos, sorted by name, so the order is stable.
    """
    images = list(
        dataset.images.filter(excluded=False, label__isnull=False, split__in=splits)
        .select_related("label")
        .order_by("sha256")
    )
    class_names = sorted({image.label.name for image in images})
    index = {name: position for position, name in enumerate(class_names)}
    examples = [
        Example(
            key=image.sha256, read=partial(file_read, file=image.file), label=index[image.label.name],
            split=image.split, group=image.group or None,
        )
        for image in images
    ]
    return examples, class_names


def near_duplicate_clusters(*, dataset: Dataset, keys: list[str]) -> list[int]:
    """A cluster index per photo (by sha256, in the order of `keys`), shared by near-duplicates
    (the same picture resized or re-encoded, by perceptual hash)."""
    rows = list(dataset.images.filter(sha256__in=keys).values_list("pk", "dataset_id", "perceptual_hash", "sha256"))
    sha_of = {pk: sha256 for pk, _, _, sha256 in rows}
    cluster_of = {
        sha_of[pk]: index
        for index, members in enumerate(near_duplicate_groups(rows=[row[:3] for row in rows]))
        for pk in members
    }
    return [cluster_of[key] for key in keys]


def active_version(*, dataset: Dataset) -> ModelVersion | None:
    return dataset.model_versions.filter(is_active=True).first()


def job_to_answer(*, job_id) -> PredictionJob:
    """The job with its dataset and the ids of the versions that serve the dataset now,
    `active_version_pk` and `shadow_version_pk` (None where there is none), in one query: a worker
    reads them for every job, since an activation changes them between two jobs."""
    serving = ModelVersion.objects.filter(dataset=OuterRef("dataset_id")).values("pk")
    return PredictionJob.objects.select_related("dataset").annotate(
        active_version_pk=Subquery(serving.filter(is_active=True)),
        shadow_version_pk=Subquery(serving.filter(is_shadow=True)),
    ).get(pk=job_id)


def with_version_number(jobs: QuerySet[PredictionJob]) -> QuerySet[PredictionJob]:
    """Jobs with `version_number`, the number of the version that answered, and
    `shadow_version_number`, the shadow's: all an answer shows of them. Joining the whole
    version row costs twice the time of the job's own read."""
    return jobs.annotate(version_number=F("model_version__number"), shadow_version_number=F("shadow_version__number"))


def prediction_job(*, job_id) -> PredictionJob | None:
    return with_version_number(PredictionJob.objects.filter(pk=job_id)).order_by().first()


def prediction_job_is_waiting(*, job_id) -> bool:
    return PredictionJob.objects.filter(pk=job_id, status__in=PredictionJob.WAITING).exists()


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


def version_metadata(*, version: ModelVersion) -> dict:
    """The metadata.json a ready version's training wrote (threshold, unsure_below, images…)."""
    return json.loads((artifact_path(version=version) / "metadata.json").read_text())


def dataset_slug(*, slug: str | None) -> str | None:
    """The slug a request names, the default one if none, or None if it cannot name a dataset
    (characters such as NUL never reach the database)."""
    slug = slug or settings.DEFAULT_DATASET_SLUG
    return slug if SLUG.fullmatch(slug) else None


def prediction_dataset(*, slug: str | None) -> Dataset | None:
    """The dataset a prediction is for: the one named, else the default one, with
    `has_active_version` read in the same query (every upload asks both)."""
    slug = dataset_slug(slug=slug)
    if not slug:
        return None
    active = ModelVersion.objects.filter(dataset=OuterRef("pk"), is_active=True)
    return Dataset.objects.filter(slug=slug).annotate(has_active_version=Exists(active)).first()


def prediction_labels() -> list[str]:
    """The labels jobs were answered with, by name."""
    return list(PredictionJob.objects.exclude(label="").values_list("label", flat=True).distinct().order_by("label"))


def recent_predictions(*, session_key: str, limit: int = 10) -> QuerySet[PredictionJob]:
    if not session_key:
        return PredictionJob.objects.none()
    return with_version_number(PredictionJob.objects.filter(session_key=session_key))[:limit]


def prediction_queue_stall(*, seconds: float) -> str | None:
    """A sentence when photos sent to the queue over `seconds` ago still wait and no job was
    answered or taken in that time (no queue cluster runs, or it is wedged); None otherwise.

    A job taken within the window counts as progress, so one slow photo is not a stall.
    """
    since = timezone.now() - timedelta(seconds=seconds)
    waiting = PredictionJob.objects.filter(status=PredictionJob.Status.QUEUED, enqueued_at__lt=since)
    if not waiting.exists():
        return None
    if PredictionJob.objects.filter(finished_at__gte=since).exists() or PredictionJob.objects.filter(
        status=PredictionJob.Status.RUNNING, started_at__gte=since
    ).exists():
        return None
    return (
        f"{waiting.count()} photo(s) have waited over {seconds:g} s and no prediction was answered in that "
        "time: the queue cluster is not running or is stalled."
    )


def health(*, stall_seconds: float) -> dict:
    """What /healthz reports: each dependency's state and the queue's; `ok` is false, and `detail`
    says why in a sentence, when the database or the broker does not answer or the queue has
    stalled (`prediction_queue_stall`)."""
    from django.db import connection
    from django.db.models import Max

    report: dict = {"database": "ok", "broker": "ok"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        logger.exception("Health check: the database does not answer")
        report["database"] = "error"
    try:
        from django_q.brokers import get_broker

        broker = get_broker()
        broker.ping()
        report["queue_depth"] = broker.queue_size()
    except Exception:
        logger.exception("Health check: the broker does not answer")
        report["broker"] = "error"
    if report["database"] == "ok":
        report["active_versions"] = {
            version.dataset.slug: version.number
            for version in ModelVersion.objects.filter(is_active=True).select_related("dataset")
        }
        report["jobs_waiting"] = PredictionJob.objects.filter(
            status__in=PredictionJob.WAITING
        ).count()
        last = PredictionJob.objects.aggregate(last=Max("finished_at"))["last"]
        report["last_job_finished"] = last.isoformat() if last else None
    problems = [
        sentence for failed, sentence in (
            (report["database"] != "ok", "The database does not answer."),
            (report["broker"] != "ok", "The queue broker does not answer."),
        ) if failed
    ]
    if report["database"] == "ok" and (stall := prediction_queue_stall(seconds=stall_seconds)):
        problems.append(stall)
    report["ok"] = not problems
    if problems:
        report["detail"] = " ".join(problems)
    return report


def worst_first(per_group: dict) -> list[tuple[str, dict]]:
    """(group, scores) lowest accuracy first: PostgreSQL's JSON does not keep the order it was stored in."""
    return sorted(per_group.items(), key=lambda item: (item[1]["accuracy"], -item[1]["count"], item[0]))
