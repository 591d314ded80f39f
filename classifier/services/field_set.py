"""The field set: every ready version of a dataset scored on the real photos whose true label is
known. Scoring runs on the training cluster, queued when labelled photos arrive or a version
becomes ready, at most one waiting per dataset; pages only read the stored scores."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from classifier import selectors, selectors_review
from classifier.ml.metrics import evaluate
from classifier.ml.predictor import Predictor
from classifier.models import FieldAnswer, FieldScore, FieldScoring, ModelVersion
from dataset.imaging import content_sha256
from dataset.models import Dataset
from dataset.selectors import file_read

logger = logging.getLogger(__name__)

FIELD_SCORING_TASK = "classifier.tasks.score_field_set"

# Splits whose photos a version learnt from (its head on train, its temperature and thresholds on
# val): they are left out of its field score, which must measure photos it has not seen.
SEEN_SPLITS = ("train", "val")


def field_set_score_request(*, dataset: Dataset) -> FieldScoring | None:
    """Queue a scoring of the dataset's ready versions once the caller's transaction commits;
    None when there is nothing to score. When one waits queued already, that one is returned: it
    reads the field set when it runs, so it sees the new photos too.

    A scoring still queued after two trainings' timeout is taken as lost (its task never
    arrived: the training cluster runs one task at a time) and replaced.
    """
    if not selectors_review.field_jobs(dataset=dataset).exists():
        return None
    if not selectors_review.ready_versions(dataset=dataset).exists():
        return None
    lost_before = timezone.now() - timedelta(seconds=2 * settings.TRAINING_TIMEOUT + 60)
    FieldScoring.objects.filter(dataset=dataset, status=FieldScoring.Status.QUEUED, requested_at__lt=lost_before) \
        .update(status=FieldScoring.Status.FAILED, error="Its task never arrived; a newer scoring replaces it.")
    try:
        with transaction.atomic():
            scoring = FieldScoring.objects.create(dataset=dataset)
    except IntegrityError:  # one waits already (the database allows one queued per dataset)
        return FieldScoring.objects.filter(dataset=dataset, status=FieldScoring.Status.QUEUED).first()
    transaction.on_commit(lambda: field_set_enqueue(scoring_id=scoring.pk), robust=True)
    return scoring


def field_set_enqueue(*, scoring_id: int) -> None:
    from django_q.tasks import async_task

    async_task(FIELD_SCORING_TASK, scoring_id, cluster=settings.TRAINING_CLUSTER,
               task_name=f"field-scoring-{scoring_id}")


def field_set_score(*, scoring_id: int) -> FieldScoring | None:
    """Run a queued scoring: one FieldScore per ready version. None if it ran already (a task
    delivered twice). A failure is recorded on the scoring and raised for the queue's log."""
    claimed = FieldScoring.objects.filter(pk=scoring_id, status=FieldScoring.Status.QUEUED).update(
        status=FieldScoring.Status.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return None
    scoring = FieldScoring.objects.select_related("dataset").get(pk=scoring_id)
    try:
        photos = field_set_versions_score(
            scoring=scoring, versions=list(selectors_review.ready_versions(dataset=scoring.dataset))
        )
    except Exception as error:
        FieldScoring.objects.filter(pk=scoring.pk).update(
            status=FieldScoring.Status.FAILED, error=f"{type(error).__name__}: {error}", finished_at=timezone.now()
        )
        raise
    FieldScoring.objects.filter(pk=scoring.pk).update(
        status=FieldScoring.Status.DONE, photos=photos, finished_at=timezone.now()
    )
    scoring.refresh_from_db()
    return scoring


@dataclass
class VersionTally:
    """What one version answered on the field photos it is scored on."""

    probabilities: list[np.ndarray] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def field_set_versions_score(*, scoring: FieldScoring, versions: list[ModelVersion]) -> int:
    """Score `versions` on the field set and store their FieldScore rows; returns the photo count.

    A version's answers are stored (FieldAnswer) the first time it meets a photo, so a scoring
    runs only the photos a version has not answered yet. A version is not scored on a photo it
    trained or was calibrated on, nor on one whose true label it does not know, nor on a job
    whose photo file is gone. A photo sent more than once counts once, with the label of its
    newest upload. Groups come from the dataset image with the same bytes, if any.
    """
    photos = selectors_review.field_photos(dataset=scoring.dataset)
    field_answers_compute(versions=versions, photos=photos)
    group_of = dict(scoring.dataset.images.exclude(group="").values_list("sha256", "group"))
    tallies = {version.pk: VersionTally() for version in versions}
    answers = FieldAnswer.objects.filter(version__in=versions, job_id__in=[photo.job_id for photo in photos])
    stored = {(answer.version_id, str(answer.job_id)): answer for answer in answers}
    counted = {version.pk: set() for version in versions}  # the bytes each version is scored on already
    for photo in reversed(photos):  # newest first
        for version in versions:
            tally, answer = tallies[version.pk], stored.get((version.pk, photo.job_id))
            if answer is None:
                tally.left_out["photo_missing"] += 1
                continue
            if answer.sha256 in counted[version.pk]:
                tally.left_out["sent_again"] += 1
                continue
            counted[version.pk].add(answer.sha256)
            if answer.seen_in_training:
                tally.left_out["seen_in_training"] += 1
            elif photo.label not in version.labels:
                tally.left_out["label_unknown_to_version"] += 1
            else:
                tally.probabilities.append(np.array(answer.probabilities))
                tally.labels.append(version.labels.index(photo.label))
                tally.groups.append(group_of.get(answer.sha256, ""))
    FieldScore.objects.bulk_create(
        [field_score_of(scoring=scoring, version=version, tally=tallies[version.pk]) for version in versions]
    )
    return len(photos)


def field_answers_compute(*, versions: list[ModelVersion], photos: list) -> None:
    """Store each version's answer for the field photos it has not answered yet. Each photo is read
    and decoded once per preprocessing (input size, JPEG reduction) and run through the version's
    LiteRT model the way serving runs it; a photo whose file is gone gets no answer."""
    answered = set(
        FieldAnswer.objects.filter(version__in=versions, job_id__in=[photo.job_id for photo in photos])
        .values_list("version_id", "job_id")
    )
    predictors: dict[int, tuple[Predictor, set[str]]] = {}
    for photo in photos:
        missing = [version for version in versions if (version.pk, uuid.UUID(photo.job_id)) not in answered]
        if not missing:
            continue
        try:
            data = file_read(file=photo.image)
        except FileNotFoundError:  # its photo was removed by hand: the row alone cannot be scored
            continue
        sha256 = content_sha256(data)
        pixels: dict[tuple[int, bool], np.ndarray] = {}
        new = []
        for version in missing:
            if version.pk not in predictors:
                predictor = Predictor(selectors.artifact_path(version=version), num_threads=settings.FIELD_SET_THREADS)
                seen = {key for split in SEEN_SPLITS for key in predictor.metadata.get("images", {}).get(split, [])}
                predictors[version.pk] = (predictor, seen)
            predictor, seen = predictors[version.pk]
            if sha256 in seen:
                new.append(FieldAnswer(version=version, job_id=photo.job_id, sha256=sha256, seen_in_training=True))
                continue
            key = (predictor.input_size, predictor.reduced_jpeg)
            if key not in pixels:
                pixels[key] = predictor.model_input(data)
            probabilities = predictor.predict_pixels(pixels[key])[0]
            new.append(FieldAnswer(version=version, job_id=photo.job_id, sha256=sha256,
                                   probabilities=[round(float(p), 6) for p in probabilities]))
        FieldAnswer.objects.bulk_create(new, ignore_conflicts=True)  # a concurrent scoring may have stored them


def field_score_of(*, scoring: FieldScoring, version: ModelVersion, tally: VersionTally) -> FieldScore:
    """The FieldScore row of one version's tally: accuracy, per-label and per-group scores."""
    if not tally.labels:
        return FieldScore(version=version, scoring=scoring, photos=0, left_out=dict(tally.left_out))
    metadata = selectors.version_metadata(version=version)
    result = evaluate(
        np.stack(tally.probabilities), np.array(tally.labels), class_names=version.labels,
        threshold=metadata.get("threshold"), groups=tally.groups, unsure_below=metadata.get("unsure_below"),
    )
    return FieldScore(
        version=version, scoring=scoring, photos=result["count"], accuracy=result["accuracy"],
        per_label=result["per_class"], per_group=result.get("per_group", {}), left_out=dict(tally.left_out),
    )
