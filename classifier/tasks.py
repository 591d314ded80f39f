"""Queue entry points: they take primary keys and call one service."""

from django.conf import settings

from classifier.models import ModelVersion
from classifier.services.field_set import field_set_score
from classifier.services.maintenance import (
    model_versions_fail_stale,
    model_versions_requeue_lost,
    prediction_jobs_requeue_stale,
)
from classifier.services.predictions import prediction_job_run
from classifier.services.retraining import dataset_retrain_if_due, model_version_train_and_judge
from dataset import imports
from dataset.models import Dataset


def train_model_version(version_id: int) -> None:
    model_version_train_and_judge(version=ModelVersion.objects.get(pk=version_id))


def retrain_if_due(dataset_id: int, activate_when_better: bool = False) -> None:
    dataset = Dataset.objects.filter(pk=dataset_id).first()
    if dataset is not None:  # a schedule outliving its dataset does nothing
        dataset_retrain_if_due(dataset=dataset, activate_when_better=activate_when_better)


def score_field_set(scoring_id: int) -> None:
    field_set_score(scoring_id=scoring_id)


def predict(job_id: str) -> None:
    prediction_job_run(job_id=job_id)


def requeue_stale() -> None:
    prediction_jobs_requeue_stale(older_than_seconds=settings.PREDICTION_STALE_SECONDS)
    model_versions_fail_stale(older_than_seconds=settings.TRAINING_TIMEOUT + 60)
    imports.import_runs_fail_stale(older_than_seconds=settings.TRAINING_TIMEOUT + 60)  # the same cluster
    model_versions_requeue_lost(older_than_seconds=settings.PREDICTION_STALE_SECONDS)
