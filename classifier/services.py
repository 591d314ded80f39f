"""Model versions: request a training, run it, activate or roll back. Nothing here imports TensorFlow
at module level; `model_version_train` reaches it through classifier.ml when a training runs."""

from __future__ import annotations

import logging
import math
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, Max
from django.utils import timezone

from classifier import notifications, selectors
from classifier.ml.backbones import BACKBONES, WeightsUnavailable
from classifier.ml.predictor import Predictor, model_input_message
from classifier.ml.train import NotTrainable, TrainSettings, training_data_check
from classifier.models import ModelVersion, PredictionJob
from dataset.models import Dataset, DatasetImage
from dataset.selectors import file_read
from dataset.services import (
    ImportCandidate,
    ImportReport,
    dataset_images_import,
    file_and_row_save,
    image_validate,
    rows_delete_with_files,
)

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

    def progress(stage: str, fraction: float) -> None:
        if on_progress:
            on_progress(stage, fraction)
        now = time.perf_counter()
        if now - last_saved[0] >= PROGRESS_INTERVAL_SECONDS or fraction >= 1.0:
            last_saved[0] = now
            ModelVersion.objects.filter(pk=version.pk).update(stage=stage, progress=round(fraction, 3))

    examples, class_names = selectors.training_examples(dataset=version.dataset)
    try:
        outcome = model_train(
            examples=examples,
            class_names=class_names,
            settings=TrainSettings.from_dict(version.training_settings),
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
        metrics=outcome.metrics,
        threshold=outcome.threshold,
        training_seconds=round(time.perf_counter() - started, 2),
        finished_at=timezone.now(),
    )
    version.refresh_from_db()
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
    return version


def model_version_activate(*, version: ModelVersion) -> ModelVersion:
    """Make `version` the one that answers for its dataset (also how a rollback is done)."""
    if version.status != ModelVersion.Status.READY:
        raise ValidationError(f"Version {version.number} is {version.get_status_display().lower()}, not ready.")
    with transaction.atomic():
        Dataset.objects.select_for_update().get(pk=version.dataset_id)
        ModelVersion.objects.filter(dataset=version.dataset_id, is_active=True).exclude(pk=version.pk).update(
            is_active=False
        )
        ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
    version.refresh_from_db()
    return version


# ----- predictions: the web side validates, stores and enqueues; a worker answers.

PREDICTION_TASK = "classifier.tasks.predict"
# A JPEG upload at least this large is decoded by the web process straight into the model's
# input, which travels with its task (see `web_decodes`). A smaller one is decoded again sooner
# than its pixels travel.
MODEL_INPUT_FROM_WEB_BYTES = 256 * 1024
JPEG_START = b"\xff\xd8\xff"
# Every backbone's input size (classifier.ml.backbones); a model that takes another is fed
# from the photo by its worker.
MODEL_INPUT_SIDE = 224


class NoActiveModel(Exception):
    """Nothing can answer for this dataset yet; the message says who can fix that."""

    def __init__(self, dataset: Dataset):
        super().__init__(
            f"No model answers for “{dataset}” yet: a curator must train and activate a version in the admin."
        )


class NoDataset(Exception):
    """The upload names a dataset that does not exist."""


class RateLimited(Exception):
    """The client sent more photos than the limit allows; `retry_after` says when it may again."""

    def __init__(self, *, limit: int, window: int, retry_after: int):
        super().__init__(
            f"Too many photos: at most {limit} every {window} seconds from one address. "
            f"Try again in {retry_after} s."
        )
        self.retry_after = retry_after


def prediction_rate_check(*, client: str) -> None:
    """Refuse a client's upload past PREDICTION_RATE_LIMIT jobs in the last window (0: no limit).

    The jobs themselves are the record, so the limit holds across processes and machines; two
    uploads racing at the edge may both pass.
    """
    limit, window = settings.PREDICTION_RATE_LIMIT, settings.PREDICTION_RATE_WINDOW_SECONDS
    if not limit or not client:
        return
    now = timezone.now()
    recent = list(
        PredictionJob.objects.filter(client=client, queued_at__gt=now - timezone.timedelta(seconds=window))
        .order_by("-queued_at")
        .values_list("queued_at", flat=True)[:limit]
    )
    if len(recent) >= limit:
        frees_at = recent[-1] + timezone.timedelta(seconds=window)
        raise RateLimited(limit=limit, window=window, retry_after=max(1, math.ceil((frees_at - now).total_seconds())))


class TooManyWaits(Exception):
    """This web process already holds as many waiting requests as it may: from this client
    (`per_client`), or from everyone; the message says so and when to ask again."""

    retry_after = 1  # a wait ends within PREDICTION_LONG_POLL_MAX_SECONDS, most within milliseconds

    def __init__(self, *, per_client: bool):
        if per_client:
            message = (f"Too many waiting requests: at most {settings.PREDICTION_WAITS_PER_CLIENT} at once from one "
                       f"address. Ask again in {self.retry_after} s, or without `wait`.")
        else:
            message = f"The server is holding all the waiting requests it can; ask again in {self.retry_after} s."
        super().__init__(message)
        self.per_client = per_client


_waits_lock = threading.Lock()
_waits: Counter[str] = Counter()  # waiting requests this process holds, by client address


@contextmanager
def prediction_wait_hold(*, client: str) -> Iterator[None]:
    """Count a waiting request of `client` while the block runs, or raise TooManyWaits past
    PREDICTION_WAITS_PER_CLIENT of its own or PREDICTION_WAITS_PER_PROCESS in all (0: no cap).

    A wait holds one of the web process's threads: the caps, kept per process since threads are,
    leave threads free for /healthz, uploads and other clients, however many waits one client sends.
    """
    per_client, per_process = settings.PREDICTION_WAITS_PER_CLIENT, settings.PREDICTION_WAITS_PER_PROCESS
    with _waits_lock:
        if per_client and _waits[client] >= per_client:
            raise TooManyWaits(per_client=True)
        if per_process and _waits.total() >= per_process:
            raise TooManyWaits(per_client=False)
        _waits[client] += 1
    try:
        yield
    finally:
        with _waits_lock:
            _waits[client] -= 1
            if not _waits[client]:
                del _waits[client]


def prediction_job_create(
    *, dataset_slug: str, data: bytes, name: str = "", session_key: str = "", client: str = ""
) -> PredictionJob:
    """Validate and store the photo, create its job for the dataset named and queue it once the
    row is committed. Refused (RateLimited, ValidationError, NoDataset, NoActiveModel), it leaves
    nothing behind.

    If queueing fails (broker down), the job is kept and `requeue_stale` sends it later.
    """
    prediction_rate_check(client=client)
    decode = partial(model_input_message, size=MODEL_INPUT_SIDE) if web_decodes(data) else None
    valid = image_validate(data=data, name=name, decode=decode)
    job = PredictionJob(image_format=valid.image_format, session_key=session_key or "", client=client[:64])
    if not file_and_row_save(
        file=job.image, name=f"upload.{valid.extension}", data=valid.data,
        row_insert=lambda: prediction_job_insert(job=job, dataset_slug=dataset_slug),
    ):
        dataset = Dataset.objects.filter(slug=dataset_slug).first()
        raise NoDataset(dataset_slug) if dataset is None else NoActiveModel(dataset)
    transaction.on_commit(lambda: prediction_enqueue(job_id=job.pk, model_input=valid.decoded), robust=True)
    return job


def web_decodes(data: bytes) -> bool:
    """Whether the web process makes an upload's model input: its validation must decode the
    photo anyway, and decoding a phone photo is most of a worker's time. Only a JPEG, which
    libjpeg decodes reduced, in about the memory of the plain check (measured, beyond the photo:
    a 49-megapixel one +4 MB against +3; progressive, +144 MB either way; a 65 000 × 760
    panorama, +48 MB against +12). Other formats decode whole canvases (a 49-megapixel PNG:
    +582 MB against +187): that is for workers, whose memory `max_rss` bounds."""
    return len(data) >= MODEL_INPUT_FROM_WEB_BYTES and data.startswith(JPEG_START)


def prediction_job_insert(*, job: PredictionJob, dataset_slug: str) -> bool:
    """INSERT the job's row for the dataset named if a version of it answers; whether it did.

    One statement where reading the dataset and then inserting took two round trips, and SQL built
    from the fields as the ORM's INSERT would, at a fraction of its CPU: every upload runs it.
    """
    quote = connection.ops.quote_name
    dataset_field = PredictionJob._meta.get_field("dataset")
    fields = [field for field in PredictionJob._meta.concrete_fields if field is not dataset_field]
    values = [field.get_db_prep_save(field.pre_save(job, add=True), connection) for field in fields]
    job_table, dataset_table, version_table = (
        quote(model._meta.db_table) for model in (PredictionJob, Dataset, ModelVersion)
    )
    columns = ", ".join(quote(field.column) for field in [*fields, dataset_field])
    sql = (
        f"INSERT INTO {job_table} ({columns}) "
        f"SELECT {', '.join(['%s'] * len(fields))}, d.id FROM {dataset_table} d WHERE d.slug = %s "
        f"AND EXISTS (SELECT 1 FROM {version_table} v WHERE v.dataset_id = d.id AND v.is_active) "
        f"RETURNING {quote(dataset_field.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, dataset_slug])
        row = cursor.fetchone()
    if row is None:
        return False
    job.dataset_id = row[0]
    job._state.adding, job._state.db = False, connection.alias  # as a saved instance
    return True


def prediction_enqueue(*, job_id, model_input: dict | None = None) -> None:
    """Queue the job; `model_input` (a `model_input_message`) spares its worker the photo's decode."""
    from django_q.tasks import async_task

    async_task(PREDICTION_TASK, str(job_id), model_input, broker=shared_broker(), task_name=f"predict-{job_id}")


_broker = None


def shared_broker():
    """One broker connection per process: a new one per enqueue doubles its cost (DESIGN.md §6)."""
    global _broker
    if _broker is None:
        from django_q.brokers import get_broker

        _broker = get_broker()
    return _broker


_predictor: tuple[int, Predictor] | None = None


def predictor_for(*, version: ModelVersion) -> Predictor:
    """The process's predictor, loaded once and replaced only when another version is active.

    The old interpreter is released before the new one loads, so memory never holds two.
    """
    global _predictor
    if _predictor is None or _predictor[0] != version.pk:
        _predictor = None
        _predictor = (version.pk, Predictor(selectors.artifact_path(version=version),
                                            num_threads=settings.PREDICTOR_THREADS))
    return _predictor[1]


def prediction_job_claim(*, job_id) -> PredictionJob | None:
    """Mark a waiting job running, counting the take, and return it with `active_version` (the
    version that answers its dataset now, or None); None if it is answered already.

    The update is conditional on the job still waiting, so a job sent twice (requeue_stale) is
    answered once: whichever run finishes first writes the answer, under the same condition.
    """
    claimed = PredictionJob.objects.filter(pk=job_id, status__in=PredictionJob.WAITING).update(
        status=PredictionJob.Status.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1,
        worker=f"{settings.NODE_NAME}:{os.getpid()}",
    )
    if not claimed:
        return None
    job = PredictionJob.objects.select_related("dataset").get(pk=job_id)
    job.active_version = selectors.active_version(dataset=job.dataset)
    return job


def prediction_job_run(*, job_id, model_input: dict | None = None) -> PredictionJob | None:
    """Answer one job. Safe to run twice: only a queued or running job is claimed, and only
    the run that still finds it running writes the answer, in one update with its result.
    The photo is decoded here unless `model_input` holds what the answering model takes."""
    job = prediction_job_claim(job_id=job_id)
    if job is None:
        return None
    version = job.active_version
    try:
        if version is None:
            raise NoActiveModel(job.dataset)
        predictor = predictor_for(version=version)
        pixels = predictor.accepted_model_input(model_input)
        if pixels is None:
            prediction = predictor.predict(file_read(file=job.image))
        else:
            prediction = predictor.predict_model_input(pixels, preprocess_ms=float(model_input["preprocess_ms"]))
    except Exception as error:  # the job records every failure; it never vanishes
        logger.exception("Prediction job %s failed", job_id)
        error_text = f"{type(error).__name__}: {error}"
        return prediction_job_finish(job=job, status=PredictionJob.Status.FAILED, error=error_text)
    return prediction_job_finish(
        job=job,
        version_number=version.number,
        status=PredictionJob.Status.DONE,
        label=prediction.label,
        confidence=prediction.confidence,
        probabilities=prediction.probabilities,
        heatmap=prediction.heatmap(),
        model_version_id=version.pk,
        preprocess_ms=round(prediction.preprocess_ms, 3),
        inference_ms=round(prediction.inference_ms, 3),
    )


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
    else:
        job.refresh_from_db()
    return job


def prediction_feedback_give(*, job: PredictionJob, correct: bool, label_name: str = "") -> PredictionJob:
    """Record whether the answer was right; a wrong answer names the right label of the dataset."""
    job.refresh_from_db(fields=["status"])  # a worker may have answered since the caller read it
    if job.status != PredictionJob.Status.DONE:
        raise ValidationError("Feedback is for answered predictions; this one is not answered yet.")
    label = None
    if not correct:
        # a NUL cannot be in a label's name, and PostgreSQL refuses it in a query
        label = job.dataset.labels.filter(name=label_name).first() if "\x00" not in label_name else None
        if label is None:
            names = ", ".join(job.dataset.labels.values_list("name", flat=True))
            raise ValidationError(f"“{label_name}” is not a label of {job.dataset}; choose one of: {names}.")
    given = {
        "feedback": PredictionJob.Feedback.CORRECT if correct else PredictionJob.Feedback.WRONG,
        "feedback_label": label,
        "feedback_at": timezone.now(),
    }
    PredictionJob.objects.filter(pk=job.pk).update(**given)
    for name, value in given.items():
        setattr(job, name, value)
    return job


def prediction_jobs_add_to_dataset(*, jobs) -> ImportReport:
    """Copy answered photos into their dataset, deduplicated like every import. The label is the
    one feedback gave for a wrong answer (unlabelled if that label is gone), else the answer."""

    report = ImportReport()
    for job in jobs.filter(status=PredictionJob.Status.DONE).select_related("dataset", "feedback_label"):
        if job.feedback == PredictionJob.Feedback.WRONG:
            label = job.feedback_label
        else:
            label = job.dataset.labels.filter(name=job.label).first()
        candidate = ImportCandidate(
            name=f"prediction-{job.pk}.{job.image.name.rsplit('.', 1)[-1]}",
            label_name=None,
            read=partial(file_read, file=job.image),
        )
        report.merge(dataset_images_import(
            dataset=job.dataset, candidates=[candidate], default_label=label, source=DatasetImage.Source.FEEDBACK,
        ))
    return report


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
    candidates = list(stale.values_list("pk", "attempts"))
    if not candidates:
        return counts
    try:
        in_broker = prediction_job_ids_in_broker(broker=shared_broker())
    except Exception:  # the broker is down: nothing is sent now, the next sweep tries again
        logger.exception("Could not read the prediction queue")
        in_broker = None
    for job_id, attempts in candidates:
        still_stale = stale.filter(pk=job_id)
        if attempts >= settings.PREDICTION_MAX_ATTEMPTS:
            if still_stale.update(
                status=PredictionJob.Status.FAILED, finished_at=now,
                error=f"Gave up after {attempts} tries: each time its worker stopped before answering.",
            ):
                notifications.job_finished(job_id)
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
    """Before datasets go: their prediction jobs with photos, their versions with artifacts."""
    rows_delete_with_files(queryset=PredictionJob.objects.filter(dataset__in=datasets), field="image")
    versions = ModelVersion.objects.filter(dataset__in=datasets)
    directories = [selectors.artifact_path(version=version) for version in versions]
    versions.delete()
    transaction.on_commit(lambda: [shutil.rmtree(directory, ignore_errors=True) for directory in directories])
