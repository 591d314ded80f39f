"""Sweeps that keep the queue honest: send again what a broker or a cluster lost, fail what never
answers, and delete what is old or goes with its dataset."""


from __future__ import annotations

import logging
import shutil

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from classifier import metrics, notifications, selectors
from classifier.models import ModelVersion, PredictionJob
from classifier.services.predictions import PREDICTION_TASK, prediction_enqueue, shared_broker
from classifier.services.training import model_version_enqueue, model_version_fail
from dataset.services import (
    rows_delete_with_files,
)

logger = logging.getLogger(__name__)


def prediction_queue_watchdog(*, stall_seconds: float) -> str | None:
    """Why the prediction cluster should start again, or None: photos wait and nothing is answered
    (`selectors.prediction_queue_stall`) while the broker answers; with the broker down a restart
    cannot help, and its ping raises."""
    stall = selectors.prediction_queue_stall(seconds=stall_seconds)
    if stall is None:
        return None
    shared_broker().ping()
    return stall


def prediction_job_ids_in_broker(*, broker) -> set[str]:
    """The jobs whose task waits in `broker`, not yet taken by any cluster."""
    from django_q.brokers.orm import ORM
    from django_q.brokers.redis_broker import Redis
    from django_q.signing import BadSignature, SignedPackage

    if isinstance(broker, Redis):
        payloads = broker.connection.lrange(broker.list_key, 0, -1)
    elif isinstance(broker, ORM):
        payloads = broker.get_connection().filter(key=broker.list_key, lock__lte=timezone.now()).values_list(
            "payload", flat=True
        )
    else:
        raise TypeError(f"Cannot list the tasks of a {type(broker).__name__} broker.")
    job_ids = set()
    for payload in payloads:
        try:
            task = SignedPackage.loads(payload)
        except BadSignature:  # another installation's task on the same queue: not one of these jobs
            continue
        if task.get("func") == PREDICTION_TASK and task.get("args"):
            job_ids.add(str(task["args"][0]))
    return job_ids


def prediction_jobs_requeue_stale(*, older_than_seconds: float) -> dict[str, int]:
    """Send again the jobs that have waited longer than the limit since they were last sent or
    taken and whose task the broker no longer holds (lost with a broker or a cluster, or left by a
    worker that died). A task still waiting in the broker is never sent twice, so a backlog stays
    one task per job however many sweeps run. A job is failed (and its waiters told) only after
    PREDICTION_MAX_ATTEMPTS workers took it without answering: a photo that kills its worker."""
    from django.db.models import Q

    now = timezone.now()
    cutoff = now - timezone.timedelta(seconds=older_than_seconds)
    counts = {"requeued": 0, "failed": 0}
    stale = PredictionJob.objects.filter(
        Q(status=PredictionJob.Status.QUEUED, enqueued_at__lt=cutoff)
        | Q(status=PredictionJob.Status.RUNNING, enqueued_at__lt=cutoff, started_at__lt=cutoff)
    )
    candidates = list(stale.values_list("pk", "attempts", "dataset__slug"))
    if not candidates:
        return counts
    try:
        in_broker = prediction_job_ids_in_broker(broker=shared_broker())
    except Exception:  # the broker is down: nothing is sent now, the next sweep tries again
        logger.exception("Could not read the prediction queue")
        in_broker = None
    for job_id, attempts, dataset_slug in candidates:
        still_stale = stale.filter(pk=job_id)
        if attempts >= settings.PREDICTION_MAX_ATTEMPTS:
            if still_stale.update(
                status=PredictionJob.Status.FAILED, finished_at=now,
                error=f"Gave up after {attempts} tries: each time its worker stopped before answering.",
            ):
                notifications.job_finished(job_id)
                metrics.prediction_given_up(job_id=job_id, dataset_slug=dataset_slug, attempts=attempts)
                counts["failed"] += 1
        elif in_broker is not None and str(job_id) not in in_broker and still_stale.update(enqueued_at=now, requeues=F("requeues") + 1):
            try:
                prediction_enqueue(job_id=job_id)
            except Exception:  # the broker is down: the next sweep tries again
                logger.exception("Could not queue prediction job %s again", job_id)
            else:
                counts["requeued"] += 1
    return counts


def prediction_jobs_delete(*, jobs) -> int:
    """Delete finished jobs and, once that is committed, their photos (waiting ones are kept)."""
    return rows_delete_with_files(queryset=jobs.exclude(status__in=PredictionJob.WAITING), field="image")


def prediction_jobs_purge(*, older_than_days: float) -> int:
    cutoff = timezone.now() - timezone.timedelta(days=older_than_days)
    return prediction_jobs_delete(jobs=PredictionJob.objects.filter(queued_at__lt=cutoff))


def model_versions_fail_stale(*, older_than_seconds: float) -> int:
    """Fail trainings still "training" past the limit: their worker was killed (timeout, memory)
    before it could say so, and their page would otherwise wait forever."""
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    stale = list(ModelVersion.objects.filter(status=ModelVersion.Status.TRAINING, started_at__lt=cutoff))
    for version in stale:
        model_version_fail(
            version=version, message=f"The training stopped without a result within {older_than_seconds:.0f} s "
            "(its worker was stopped: timeout or memory). Start a new one.", started=None,
        )
    return len(stale)


def model_versions_requeue_lost(*, older_than_seconds: float) -> int:
    """Queue again the trainings still queued past the limit while the training queue is empty
    and nothing trains: their task is gone (a Redis restart loses it), and nothing else would
    ever start them. A task that is in fact on its way only trains once: its version is ready
    by the time the second copy arrives on the training cluster's one worker."""
    from django_q.brokers import get_broker

    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    lost = list(
        ModelVersion.objects.filter(status=ModelVersion.Status.QUEUED, created_at__lt=cutoff).values_list("pk", flat=True)
    )
    if not lost or ModelVersion.objects.filter(status=ModelVersion.Status.TRAINING).exists():
        return 0
    if get_broker(settings.TRAINING_CLUSTER).queue_size():
        return 0
    for version_id in lost:
        model_version_enqueue(version_id=version_id)
    return len(lost)


def datasets_classifier_data_delete(*, datasets) -> None:
    """Before datasets go: their prediction jobs with photos, their versions with artifacts, their
    retrain schedules."""
    from django_q.models import Schedule

    from classifier.services.retraining import RETRAIN_TASK

    dataset_ids = [repr(pk) for pk in datasets.values_list("pk", flat=True)]
    Schedule.objects.filter(func=RETRAIN_TASK, args__in=dataset_ids).delete()
    rows_delete_with_files(queryset=PredictionJob.objects.filter(dataset__in=datasets), field="image")
    versions = ModelVersion.objects.filter(dataset__in=datasets)
    directories = [selectors.artifact_path(version=version) for version in versions]
    versions.delete()
    transaction.on_commit(lambda: [shutil.rmtree(directory, ignore_errors=True) for directory in directories])
