"""Shadow mode: a curator puts one ready, non-active version of a dataset "in shadow"; workers run
it beside the active version on each live photo, on the same pixels, after the answer is written
and its sender woken, and store its answer with the job. The sender never sees it.

A worker holds at most one shadow model besides its active one: the slot is emptied before
another shadow loads, when its dataset has no shadow any more, and handed to the active slot when
the shadow version is activated (no second load, no third model in memory).
"""

from __future__ import annotations

import logging
import time

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from classifier import metrics, selectors
from classifier.ml.predictor import Predictor
from classifier.models import ModelVersion, PredictionJob
from classifier.services.workers import rss_bytes
from dataset.models import Dataset
from dataset.selectors import file_read

logger = logging.getLogger(__name__)


def model_version_shadow_start(*, version: ModelVersion, user=None) -> ModelVersion:
    """Put `version` in shadow for its dataset, in place of the version shadowing it, if any.
    Refused unless the version is ready, not active, and its dataset has an active version."""
    if version.status != ModelVersion.Status.READY:
        raise ValidationError(f"Version {version.number} is {version.get_status_display().lower()}, not ready: "
                              "only a ready version can run in shadow.")
    with transaction.atomic():
        dataset = Dataset.objects.select_for_update().get(pk=version.dataset_id)
        version.refresh_from_db(fields=["is_active", "is_shadow"])
        if version.is_active:
            raise ValidationError(f"{version} is the active version: it answers already, a shadow runs beside it.")
        if version.is_shadow:
            raise ValidationError(f"{version} is in shadow already.")
        if not dataset.model_versions.filter(is_active=True).exists():
            raise ValidationError(f"{dataset} has no active version: a shadow runs beside one; activate a version first.")
        dataset.model_versions.filter(is_shadow=True).update(is_shadow=False)
        ModelVersion.objects.filter(pk=version.pk).update(is_shadow=True)
    version.is_shadow = True
    logger.info("shadow started version=%s by=%s", version, getattr(user, "username", "") or "-",
                extra={"dataset": dataset.slug, "version": str(version.number)})
    return version


def model_version_shadow_stop(*, dataset: Dataset) -> ModelVersion:
    """Stop the shadowing of `dataset`; the version that shadowed it is returned. Refused when
    none does. The answers it gave stay with their jobs."""
    with transaction.atomic():
        Dataset.objects.select_for_update().get(pk=dataset.pk)
        version = dataset.model_versions.filter(is_shadow=True).first()
        if version is None:
            raise ValidationError(f"No version of {dataset} is in shadow.")
        ModelVersion.objects.filter(pk=version.pk).update(is_shadow=False)
    version.is_shadow = False
    logger.info("shadow stopped version=%s", version, extra={"dataset": dataset.slug, "version": str(version.number)})
    return version


_shadow: tuple[int, Predictor] | None = None  # (version pk, its predictor): this process's shadow slot


def shadow_predictor_for(*, version: ModelVersion) -> Predictor:
    """The process's shadow predictor for `version`, loaded once; the slot's previous model is
    released before it loads, so the process holds one shadow model at most."""
    global _shadow
    if _shadow is None or _shadow[0] != version.pk:
        shadow_predictor_release()
        before, started = rss_bytes(), time.perf_counter()
        predictor = Predictor(selectors.artifact_path(version=version), num_threads=settings.PREDICTOR_THREADS)
        _shadow = (version.pk, predictor)
        metrics.shadow_loaded(version=version, seconds=time.perf_counter() - started, rss_growth=rss_bytes() - before)
    return _shadow[1]


def shadow_predictor_release() -> None:
    """Empty the shadow slot (its dataset has no shadow any more)."""
    global _shadow
    if _shadow is not None:
        _shadow = None
        metrics.shadow_released()


def shadow_predictor_take(*, version: ModelVersion) -> Predictor | None:
    """The shadow slot's predictor if it is `version`'s (the shadow was activated), moved out of
    the slot for the active one; else None."""
    if _shadow is None or _shadow[0] != version.pk:
        return None
    predictor = _shadow[1]
    shadow_predictor_release()
    return predictor


def prediction_job_shadow_answer(*, job: PredictionJob, version: ModelVersion, pixels: np.ndarray,
                                 active: Predictor) -> PredictionJob:
    """Run the shadow `version` on the pixels the `active` predictor answered `job` from (its own
    decode of the photo only when it takes other pixels) and store its answer with the job, unless
    one is stored already. A failure is logged; it never touches the job's own answer."""
    try:
        predictor = shadow_predictor_for(version=version)
        started = time.perf_counter()
        if predictor.input_size != active.input_size or predictor.reduced_jpeg != active.reduced_jpeg:
            pixels = predictor.model_input(file_read(file=job.image))
        prediction = predictor.predict_model_input(pixels, preprocess_ms=0.0)
        answer = {
            "shadow_version": version, "shadow_label": prediction.label,
            "shadow_confidence": prediction.confidence, "shadow_probabilities": prediction.probabilities,
            "shadow_decision": prediction.decision,
            "shadow_ms": round((time.perf_counter() - started) * 1000, 3),
        }
    except Exception:
        logger.exception("The shadow %s could not answer job %s", version, job.pk)
        return job
    if PredictionJob.objects.filter(
        pk=job.pk, status=PredictionJob.Status.DONE, shadow_version__isnull=True
    ).update(**answer):
        for name, value in answer.items():
            setattr(job, name, value)
        metrics.shadow_answered(job=job, version=version)
    return job
