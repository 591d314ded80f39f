"""Retraining as the dataset learns from its users: a suggestion once enough reviewed photos have
arrived since the active version was trained, an opt-in daily retrain per dataset (a django-q2
schedule on the training cluster), and an opt-in activation of a scheduled candidate only when it
beats the active version on both the test split and the field set."""

from __future__ import annotations

import ast
import logging

from django.conf import settings
from django.core.exceptions import ValidationError

from classifier.candidates import candidate_report
from classifier.models import ModelVersion
from classifier.selectors import active_version
from classifier.selectors_review import field_photos
from classifier.services.field_set import field_answers_compute
from classifier.services.training import model_version_activate, model_version_request, model_version_train
from classifier.workspace import retrain_due
from dataset.models import Dataset

logger = logging.getLogger(__name__)

RETRAIN_TASK = "classifier.tasks.retrain_if_due"


def schedule_name(dataset: Dataset) -> str:
    return f"retrain {dataset.slug}"


def retrain_schedule_get(*, dataset: Dataset) -> dict | None:
    """{"activate_when_better": bool, "next_run": datetime} of the dataset's daily retrain; None when off."""
    from django_q.models import Schedule

    schedule = Schedule.objects.filter(name=schedule_name(dataset)).first()
    if schedule is None:
        return None
    options = ast.literal_eval(schedule.kwargs) if schedule.kwargs else {}
    return {"activate_when_better": bool(options.get("activate_when_better")), "next_run": schedule.next_run}


def retrain_schedule_set(*, dataset: Dataset, enabled: bool, activate_when_better: bool = False):
    """Turn the dataset's daily retrain on (with or without activation of a better candidate) or off."""
    from django_q.models import Schedule

    if not enabled:
        Schedule.objects.filter(name=schedule_name(dataset)).delete()
        return None
    schedule, _ = Schedule.objects.update_or_create(
        name=schedule_name(dataset),
        defaults={"func": RETRAIN_TASK, "args": repr(dataset.pk),
                  "kwargs": repr({"activate_when_better": activate_when_better}),
                  "schedule_type": Schedule.DAILY, "repeats": -1, "cluster": settings.TRAINING_CLUSTER},
    )
    return schedule


def dataset_retrain_if_due(*, dataset: Dataset, activate_when_better: bool) -> ModelVersion | None:
    """The scheduled retrain: queue a training when one is due; None when not, or when the data
    cannot train (logged)."""
    if not retrain_due(dataset=dataset):
        return None
    try:
        return model_version_request(dataset=dataset, activate_when_better=activate_when_better)
    except ValidationError as refusal:
        logger.warning("Scheduled retrain of %s refused: %s", dataset, " ".join(refusal.messages))
        return None


def candidate_activate_if_better(*, version: ModelVersion) -> bool:
    """Activate a ready candidate that asked for it only if it is right more often than the active
    version on both the test split and the field set (its field answers are computed first);
    True if it was activated. With no active version there is nothing to beat: it is activated."""
    active = active_version(dataset=version.dataset)
    if active is not None:
        field_answers_compute(versions=[version, active], photos=field_photos(dataset=version.dataset))
        report = candidate_report(version=version)
        if report is None or not all(s.photos and s.candidate > s.active for s in report.sets):
            logger.info("%s stays a candidate: it does not beat %s on both sets", version, active)
            return False
    model_version_activate(version=version)
    logger.info("%s activated: it beats the version it replaces on the test split and the field set", version)
    return True


def model_version_train_and_judge(*, version: ModelVersion) -> ModelVersion:
    """Train a queued version; one a scheduled retrain asked to judge is then activated if it
    beats the active version (`candidate_activate_if_better`)."""
    version = model_version_train(version=version)
    if version.activate_when_better and version.status == ModelVersion.Status.READY and not version.is_active:
        candidate_activate_if_better(version=version)
        version.refresh_from_db()
    return version
