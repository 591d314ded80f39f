"""Queue entry points: they take primary keys and call one service."""

from django.conf import settings

from classifier import services
from classifier.models import ModelVersion
from dataset import imports


def train_model_version(version_id: int) -> None:
    services.model_version_train(version=ModelVersion.objects.get(pk=version_id))


def predict(job_id: str, model_input: dict | None = None) -> None:
    services.prediction_job_run(job_id=job_id, model_input=model_input)


def requeue_stale() -> None:
    services.prediction_jobs_requeue_stale(older_than_seconds=settings.PREDICTION_STALE_SECONDS)
    services.model_versions_fail_stale(older_than_seconds=settings.TRAINING_TIMEOUT + 60)
    imports.import_runs_fail_stale(older_than_seconds=settings.TRAINING_TIMEOUT + 60)  # the same cluster
    services.model_versions_requeue_lost(older_than_seconds=settings.PREDICTION_STALE_SECONDS)
