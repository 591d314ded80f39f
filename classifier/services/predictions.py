"""Predictions: the web side validates, stores and queues a photo; a worker claims and answers it;
feedback and its photos go back into the dataset."""


from __future__ import annotations

import logging
import os
import time
from functools import partial

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from classifier import metrics, notifications, selectors
from classifier.ml.predictor import Predictor
from classifier.models import ModelVersion, PredictionJob
from classifier.services import shadow
from classifier.services.field_set import field_set_score_request
from classifier.services.limits import prediction_rate_check
from classifier.services.workers import worker_job_done
from coffeeclassifier import logs
from dataset.models import Dataset, DatasetImage, Label
from dataset.selectors import file_read
from dataset.services import ImportCandidate, ImportReport, dataset_images_import, file_and_row_save
from dataset.validation import image_validate

logger = logging.getLogger(__name__)

PREDICTION_TASK = "classifier.tasks.predict"

class NoActiveModel(Exception):
    """Nothing can answer for this dataset yet; the message says who can fix that."""

    def __init__(self, dataset: Dataset):
        super().__init__(
            f"No model answers for “{dataset}” yet: a curator must train and activate a version in the admin."
        )


class NoDataset(Exception):
    """The upload names a dataset that does not exist."""


def prediction_job_create(
    *, dataset_slug: str, data: bytes, name: str = "", session_key: str = "", client: str = ""
) -> PredictionJob:
    """Validate and store the photo, create its job for the dataset named and queue it once the
    row is committed. Refused (RateLimited, ValidationError, NoDataset, NoActiveModel), it leaves
    nothing behind.

    If queueing fails (broker down), the job is kept and `requeue_stale` sends it later.
    """
    prediction_rate_check(client=client)
    valid = image_validate(data=data, name=name)
    dataset = selectors.prediction_dataset(slug=dataset_slug)
    if dataset is None:
        raise NoDataset(dataset_slug)
    if not dataset.has_active_version:
        raise NoActiveModel(dataset)
    job = PredictionJob(
        dataset=dataset, image_format=valid.image_format, session_key=session_key or "", client=client[:64],
        request_id=logs.request_id(),
    )
    file_and_row_save(file=job.image, name=f"upload.{valid.extension}", data=valid.data)
    transaction.on_commit(lambda: prediction_enqueue(job_id=job.pk), robust=True)
    metrics.prediction_queued(job=job)
    return job


def prediction_enqueue(*, job_id) -> None:
    """Queue the job by its id: the worker reads the photo from storage."""
    from django_q.tasks import async_task

    async_task(PREDICTION_TASK, str(job_id), broker=shared_broker(), task_name=f"predict-{job_id}")


_broker = None


def shared_broker():
    """One broker connection per process: a new one per enqueue doubles its cost (DESIGN.md §6)."""
    global _broker
    if _broker is None:
        from django_q.brokers import get_broker

        _broker = get_broker()
    return _broker


_versions: dict[int, ModelVersion] = {}


def serving_version(*, pk: int | None) -> ModelVersion | None:
    """The version `pk` with its dataset, read once per process: what answering reads of a ready
    version (number, labels, artifact) never changes. None for None, or a version since deleted."""
    if pk is not None and pk not in _versions:
        version = ModelVersion.objects.select_related("dataset").filter(pk=pk).first()
        if version is None:
            return None
        _versions[pk] = version
    return _versions.get(pk)


_predictor: tuple[int, Predictor] | None = None


def predictor_for(*, version: ModelVersion) -> Predictor:
    """The process's predictor, loaded once and replaced only when another version is active.

    The old interpreter is released before the new one loads, so memory never holds two; a
    shadow version just activated is taken from the shadow slot, not loaded again.
    """
    global _predictor
    if _predictor is None or _predictor[0] != version.pk:
        _predictor = None
        started = time.perf_counter()
        predictor = shadow.shadow_predictor_take(version=version) or Predictor(
            selectors.artifact_path(version=version), num_threads=settings.PREDICTOR_THREADS
        )
        _predictor = (version.pk, predictor)
        metrics.model_loaded(version=version, seconds=time.perf_counter() - started)
    return _predictor[1]


def prediction_job_claim(*, job_id) -> PredictionJob | None:
    """Mark a waiting job running, counting the take, and return it with `active_version` (the
    version that answers its dataset now, or None) and `shadowing_version` (the one in shadow, or
    None); None if it is answered already.

    The update is conditional on the job still waiting, so a job sent twice (requeue_stale) is
    answered once: whichever run finishes first writes the answer, under the same condition.
    """
    claimed = PredictionJob.objects.filter(pk=job_id, status__in=PredictionJob.WAITING).update(
        status=PredictionJob.Status.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1,
        worker=f"{settings.NODE_NAME}:{os.getpid()}",
    )
    if not claimed:
        return None
    job = selectors.job_to_answer(job_id=job_id)
    job.active_version = serving_version(pk=job.active_version_pk)
    job.shadowing_version = serving_version(pk=job.shadow_version_pk)
    return job


def prediction_job_run(*, job_id) -> PredictionJob | None:
    """Answer one job. Safe to run twice: only a queued or running job is claimed, and only
    the run that still finds it running writes the answer, in one update with its result.
    Its log lines carry the request id of the upload."""
    job = prediction_job_claim(job_id=job_id)
    if job is None:
        return None
    with logs.request_id_bound(job.request_id):
        job = prediction_job_answer(job=job)
    worker_job_done()
    return job


def prediction_job_answer(*, job: PredictionJob) -> PredictionJob:
    """Run the claimed job's model on its photo and write the answer, or the error. Once the
    answer is written (its sender woken), the version in shadow, if any, answers from the same
    decoded photo."""
    version = job.active_version
    try:
        if version is None:
            raise NoActiveModel(job.dataset)
        predictor = predictor_for(version=version)
        started = time.perf_counter()
        pixels = predictor.model_input(file_read(file=job.image))
        preprocess_ms = (time.perf_counter() - started) * 1000
        prediction = predictor.predict_model_input(pixels, preprocess_ms=preprocess_ms)
    except Exception as error:  # the job records every failure; it never vanishes
        logger.exception("Prediction job %s failed", job.pk)
        error_text = f"{type(error).__name__}: {error}"
        return prediction_job_finish(job=job, status=PredictionJob.Status.FAILED, error=error_text)
    job = prediction_job_finish(
        job=job,
        version_number=version.number,
        status=PredictionJob.Status.DONE,
        label=prediction.label,
        confidence=prediction.confidence,
        probabilities=prediction.probabilities,
        decision=prediction.decision,
        heatmap=prediction.heatmap(),
        model_version_id=version.pk,
        preprocess_ms=round(prediction.preprocess_ms, 3),
        inference_ms=round(prediction.inference_ms, 3),
    )
    if job.shadowing_version is None:
        shadow.shadow_predictor_release()
    elif job.status == PredictionJob.Status.DONE:
        job = shadow.prediction_job_shadow_answer(job=job, version=job.shadowing_version, pixels=pixels,
                                                  active=predictor)
    return job


def prediction_job_finish(*, job: PredictionJob, version_number: int | None = None, **result) -> PredictionJob:
    """Write a waiting job's final state in one update, unless another run already did. Requests
    waiting on the job are woken with what was written, so they need not read the row back.

    The run that answers records its own start and process: a job sent again (requeue_stale)
    may have been claimed by another run since.
    """
    result.update(started_at=job.started_at, worker=job.worker, finished_at=timezone.now())
    if PredictionJob.objects.filter(pk=job.pk, status__in=PredictionJob.WAITING).update(**result):
        answer = {**result, "version_number": version_number}
        for name, value in answer.items():
            setattr(job, name, value)
        notifications.job_finished(job.pk, answer=answer)
        metrics.prediction_finished(job=job, version_number=version_number)
    else:
        job.refresh_from_db()
    return job


def dataset_label_named(*, dataset: Dataset, name: str) -> Label:
    """The dataset's label called `name`; ValidationError naming the labels there are otherwise."""
    # a NUL cannot be in a label's name, and PostgreSQL refuses it in a query
    label = dataset.labels.filter(name=name).first() if "\x00" not in name else None
    if label is None:
        names = ", ".join(dataset.labels.values_list("name", flat=True))
        raise ValidationError(f"“{name}” is not a label of {dataset}; choose one of: {names}.")
    return label


def prediction_feedback_give(*, job: PredictionJob, correct: bool, label_name: str = "") -> PredictionJob:
    """Record whether the answer was right; a wrong answer names the right label of the dataset."""
    job.refresh_from_db(fields=["status"])  # a worker may have answered since the caller read it
    if job.status != PredictionJob.Status.DONE:
        raise ValidationError("Feedback is for answered predictions; this one is not answered yet.")
    label = None if correct else dataset_label_named(dataset=job.dataset, name=label_name)
    given = {
        "feedback": PredictionJob.Feedback.CORRECT if correct else PredictionJob.Feedback.WRONG,
        "feedback_label": label,
        "feedback_at": timezone.now(),
    }
    PredictionJob.objects.filter(pk=job.pk).update(**given)
    for name, value in given.items():
        setattr(job, name, value)
    metrics.feedback_given(job=job)
    field_set_score_request(dataset=job.dataset)  # the photo's true label is known now
    return job


def prediction_jobs_add_to_dataset(*, jobs, source: str = DatasetImage.Source.FEEDBACK) -> ImportReport:
    """Copy answered photos into their dataset, deduplicated like every import. The label is the
    one a curator gave in review, else the one feedback gave for a wrong answer (unlabelled if
    that label is gone), else the answer."""

    report = ImportReport()
    for job in jobs.filter(status=PredictionJob.Status.DONE).select_related("dataset", "feedback_label",
                                                                            "review_label"):
        if job.review_label_id:
            label = job.review_label
        elif job.feedback == PredictionJob.Feedback.WRONG:
            label = job.feedback_label
        else:
            label = job.dataset.labels.filter(name=job.label).first()
        candidate = ImportCandidate(
            name=f"prediction-{job.pk}.{job.image.name.rsplit('.', 1)[-1]}",
            label_name=None,
            read=partial(file_read, file=job.image),
        )
        report.merge(dataset_images_import(
            dataset=job.dataset, candidates=[candidate], default_label=label, source=source,
        ))
    return report
