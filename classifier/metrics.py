"""What the services report as they work: Prometheus samples (prometheus_client's multiprocess
mode, so every web and worker process of the machine counts) and one structured log line per job,
per model load and per training stage. Each service calls one function here; no function reads
the database, so a job pays a few memory writes (files under PROMETHEUS_MULTIPROC_DIR, mmapped).

Label values are bounded: datasets and their labels are a curator's, versions are numbers,
statuses and decisions are fixed sets.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram

from classifier.models import ModelVersion, PredictionJob

logger = logging.getLogger("classifier.jobs")

PREDICTIONS = Counter(
    "coffeeclassifier_predictions_total", "Prediction jobs finished, by answer and outcome.",
    ["dataset", "version", "label", "decision", "status"],
)
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)
PREDICTION_SECONDS = Histogram(
    "coffeeclassifier_prediction_duration_seconds", "From upload to answer (as the sender waited).",
    ["dataset"], buckets=_LATENCY_BUCKETS,
)
QUEUE_WAIT_SECONDS = Histogram(
    "coffeeclassifier_prediction_queue_wait_seconds", "From upload to a worker taking the job.",
    ["dataset"], buckets=_LATENCY_BUCKETS,
)
PREPROCESS_SECONDS = Histogram(
    "coffeeclassifier_prediction_preprocess_seconds", "Decoding and resizing a photo for the model.",
    ["dataset"], buckets=_STEP_BUCKETS,
)
INFERENCE_SECONDS = Histogram(
    "coffeeclassifier_prediction_inference_seconds", "Running the model on one photo.",
    ["dataset"], buckets=_STEP_BUCKETS,
)
FEEDBACK = Counter(
    "coffeeclassifier_prediction_feedback_total", "Right / wrong feedback on answers, by the version that answered.",
    ["dataset", "version", "feedback"],
)
TRAININGS = Counter("coffeeclassifier_trainings_total", "Trainings finished, by outcome.", ["dataset", "status"])
TRAINING_SECONDS = Histogram(
    "coffeeclassifier_training_duration_seconds", "How long a training took, ready or failed.",
    ["dataset"], buckets=(10, 30, 60, 120, 300, 600, 1200, 1800, 3600),
)
# Per worker process (a `pid` label is added; a dead process's values leave with it).
WORKER_MODEL_VERSION = Gauge(
    "coffeeclassifier_worker_model_version", "The version number of the model this process holds.",
    ["dataset"], multiprocess_mode="liveall",
)
WORKER_MODEL_LOAD_SECONDS = Gauge(
    "coffeeclassifier_worker_model_load_seconds", "How long this process took to load its model.",
    ["dataset"], multiprocess_mode="liveall",
)
WORKER_SHADOW_VERSION = Gauge(
    "coffeeclassifier_worker_shadow_model_version",
    "The version number of the shadow model this process holds; 0 once it holds none.",
    ["dataset"], multiprocess_mode="liveall",
)
WORKER_SHADOW_BYTES = Gauge(
    "coffeeclassifier_worker_shadow_model_bytes",
    "How much this process's resident memory grew when it loaded its shadow model; 0 once it holds none.",
    ["dataset"], multiprocess_mode="liveall",
)
SHADOW_PREDICTIONS = Counter(
    "coffeeclassifier_shadow_predictions_total", "Shadow answers stored, by whether they agree with the answer.",
    ["dataset", "version", "agrees"],
)
WORKER_RSS_BYTES = Gauge(
    "coffeeclassifier_worker_resident_memory_bytes", "Resident memory of this worker process.",
    ["cluster"], multiprocess_mode="liveall",
)

_loaded: dict[str, int] = {}  # dataset slug → version number held by this process
_shadow: dict = {}  # {"dataset": slug, "version": number, "bytes": RSS growth} of the shadow held, if any


def prediction_queued(*, job: PredictionJob) -> None:
    """Log the upload's line: with the worker's, it carries the request id."""
    dataset = job.dataset.slug
    logger.info("prediction queued job=%s dataset=%s", job.pk, dataset, extra={"job_id": str(job.pk), "dataset": dataset})


def prediction_finished(*, job: PredictionJob, version_number: int | None) -> None:
    """Count a job's outcome and times, and log its line. Called once per job, by the run that
    wrote its answer (`job` holds what was written)."""
    dataset = job.dataset.slug
    version = "" if version_number is None else str(version_number)
    decision = job.decision  # "answered", "unsure", or "" for a failed job
    PREDICTIONS.labels(dataset, version, job.label, decision, job.status).inc()
    total = (job.finished_at - job.queued_at).total_seconds()
    PREDICTION_SECONDS.labels(dataset).observe(total)
    if job.started_at is not None:
        QUEUE_WAIT_SECONDS.labels(dataset).observe(max(0.0, (job.started_at - job.queued_at).total_seconds()))
    if job.preprocess_ms is not None and job.inference_ms is not None:
        PREPROCESS_SECONDS.labels(dataset).observe(job.preprocess_ms / 1000)
        INFERENCE_SECONDS.labels(dataset).observe(job.inference_ms / 1000)
    fields = {"job_id": str(job.pk), "dataset": dataset, "version": version, "label": job.label,
              "decision": decision, "status": job.status, "ms": round(total * 1000, 1)}
    logger.info("prediction %s job=%s dataset=%s version=%s label=%s decision=%s ms=%.1f", job.status, job.pk,
                dataset, version, job.label, decision, total * 1000, extra=fields)


def prediction_given_up(*, job_id, dataset_slug: str, attempts: int) -> None:
    """Count a job `requeue_stale` failed because every worker that took it died (the error rate's
    share of photos that kill workers), and log its line."""
    PREDICTIONS.labels(dataset_slug, "", "", "", PredictionJob.Status.FAILED).inc()
    logger.warning("prediction failed job=%s dataset=%s: given up after %s tries", job_id, dataset_slug, attempts,
                   extra={"job_id": str(job_id), "dataset": dataset_slug, "status": "failed", "attempts": attempts})


def feedback_given(*, job: PredictionJob) -> None:
    """Count Right / Wrong for the version that answered: live accuracy, per version."""
    version = job.model_version.number if job.model_version_id else ""
    FEEDBACK.labels(job.dataset.slug, str(version), job.feedback).inc()


def model_loaded(*, version: ModelVersion, seconds: float) -> None:
    """Record the model this process now holds for its dataset."""
    dataset = version.dataset.slug
    _loaded[dataset] = version.number
    WORKER_MODEL_VERSION.labels(dataset).set(version.number)
    WORKER_MODEL_LOAD_SECONDS.labels(dataset).set(seconds)
    logger.info("model_loaded dataset=%s version=%s ms=%.1f", dataset, version.number, seconds * 1000,
                extra={"dataset": dataset, "version": str(version.number), "ms": round(seconds * 1000, 1)})


def shadow_loaded(*, version: ModelVersion, seconds: float, rss_growth: int) -> None:
    """Record the shadow model this process now holds, and what loading it cost."""
    dataset = version.dataset.slug
    _shadow.clear()
    _shadow.update(dataset=dataset, version=version.number, bytes=max(0, rss_growth))
    WORKER_SHADOW_VERSION.labels(dataset).set(version.number)
    WORKER_SHADOW_BYTES.labels(dataset).set(_shadow["bytes"])
    logger.info("shadow_loaded dataset=%s version=%s ms=%.1f rss_growth=%d", dataset, version.number,
                seconds * 1000, rss_growth, extra={"dataset": dataset, "version": str(version.number),
                                                    "ms": round(seconds * 1000, 1), "bytes": rss_growth})


def shadow_released() -> None:
    """Record that this process holds no shadow model any more."""
    if _shadow:
        WORKER_SHADOW_VERSION.labels(_shadow["dataset"]).set(0)
        WORKER_SHADOW_BYTES.labels(_shadow["dataset"]).set(0)
        _shadow.clear()


def shadow_answered(*, job: PredictionJob, version: ModelVersion) -> None:
    """Count a stored shadow answer, agreeing with the job's answer or not."""
    SHADOW_PREDICTIONS.labels(job.dataset.slug, str(version.number), str(job.shadow_label == job.label).lower()).inc()


def shadow_bytes() -> int:
    """How much loading its shadow model grew this process's memory; 0 without one."""
    return _shadow.get("bytes", 0)


def loaded_versions() -> str:
    """The versions this process holds, e.g. "coffee v2, coffee v3 (shadow)"."""
    held = [f"{dataset} v{number}" for dataset, number in sorted(_loaded.items())]
    if _shadow:
        held.append(f"{_shadow['dataset']} v{_shadow['version']} (shadow)")
    return ", ".join(held)


def worker_memory(*, cluster: str, rss_bytes: int) -> None:
    WORKER_RSS_BYTES.labels(cluster).set(rss_bytes)


def training_stage(*, version: ModelVersion, stage: str, seconds: float) -> None:
    """Log a training stage that has ended (embeddings, head, evaluation, export…)."""
    logger.info("training_stage version=%s stage=%s ms=%.0f", version, stage, seconds * 1000,
                extra={"dataset": version.dataset.slug, "version": str(version.number), "stage": stage,
                       "ms": round(seconds * 1000)})


def training_finished(*, version: ModelVersion) -> None:
    """Count a training that ended and say how: "ready" (with its test accuracy) or why it failed."""
    dataset = version.dataset.slug
    TRAININGS.labels(dataset, version.status).inc()
    if version.training_seconds is not None:
        TRAINING_SECONDS.labels(dataset).observe(version.training_seconds)
    fields = {"dataset": dataset, "version": str(version.number), "status": version.status,
              "seconds": version.training_seconds}
    if version.status == ModelVersion.Status.READY:
        accuracy = version.test_accuracy()
        logger.info("Version %s is ready (test accuracy %s, trained in %s s).",
                    version, "n/a" if accuracy is None else f"{accuracy:.1%}", version.training_seconds,
                    extra=fields)
    else:
        logger.warning("Training of %s failed: %s", version, version.error, extra=fields)
