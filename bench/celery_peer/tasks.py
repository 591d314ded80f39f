"""The peer's one task: answer a stored photo with the LiteRT model each worker process holds."""

import os

from celery.signals import worker_process_init
from django.conf import settings
from django.utils import timezone

from bench.celery_peer.celery_app import app
from classifier import selectors
from classifier.ml.predictor import Predictor
from classifier.models import PredictionJob
from dataset.models import Dataset
from dataset.selectors import file_read

_loaded: dict[str, Predictor] = {}


@worker_process_init.connect
def predictor_load(**_):
    """Each prefork process loads the active version's model once, before its first task."""
    dataset = Dataset.objects.get(slug=os.environ.get("BENCH_DATASET", "bench"))
    version = selectors.active_version(dataset=dataset)
    _loaded["predictor"] = Predictor(selectors.artifact_path(version=version), num_threads=settings.PREDICTOR_THREADS)
    _loaded["version"] = version


@app.task
def predict(job_id: str) -> dict:
    """The answer for the job's photo (the project's preprocessing, so the pixels are the system's),
    written to its row and returned. Run again after a crash, it writes the same answer."""
    job = PredictionJob.objects.get(pk=job_id)
    prediction = _loaded["predictor"].predict(file_read(file=job.image))
    job.status, job.label, job.confidence = PredictionJob.Status.DONE, prediction.label, prediction.confidence
    job.probabilities, job.model_version, job.finished_at = prediction.probabilities, _loaded["version"], timezone.now()
    job.preprocess_ms, job.inference_ms = prediction.preprocess_ms, prediction.inference_ms
    job.save(update_fields=["status", "label", "confidence", "probabilities", "model_version", "finished_at",
                            "preprocess_ms", "inference_ms"])
    return {"label": prediction.label, "confidence": prediction.confidence}
