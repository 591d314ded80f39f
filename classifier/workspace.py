"""Read helpers for the curator's workspace: each dataset at a glance, and where a training stands."""

from __future__ import annotations

from datetime import datetime, time

from django.conf import settings
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from classifier.ml.train import STAGES, NotTrainable, TrainSettings, data_fingerprint, training_data_check
from classifier.models import ModelVersion, PredictionJob
from classifier.reports import seconds_text
from classifier.selectors import active_version, training_examples
from classifier.selectors_review import review_waiting_counts
from dataset.models import Dataset, DatasetImage

# Share of a training's time per stage when no earlier version of the dataset says better.
DEFAULT_STAGE_SHARES = {"embeddings": 0.6, "head": 0.2, "evaluation": 0.02, "export": 0.18}
# Below this share done, an estimate from the elapsed time alone says nothing.
ESTIMATE_FROM = 0.05


def stage_seconds(*, dataset: Dataset, backbone: str) -> dict[str, float] | None:
    """The stage timings of the dataset's latest ready version with this backbone, if it stored them."""
    for metrics in (
        dataset.model_versions.filter(status=ModelVersion.Status.READY, backbone=backbone)
        .order_by("-number").values_list("metrics", flat=True)[:5]
    ):
        if all(stage in (metrics.get("timings") or {}) for stage in STAGES):
            return metrics["timings"]
    return None


def training_progress(*, version: ModelVersion) -> dict:
    """Where a version's training stands, overall: step n of the stages, the share done, elapsed
    seconds, an estimate of the seconds left (from the last such training's stage timings, else
    from the pace so far; None while nothing says), and the same in a sentence."""
    status = version.status
    report = {"status": status, "stages": len(STAGES), "step": 0, "stage": "", "done": 0.0,
              "elapsed": None, "left": None}
    if status == ModelVersion.Status.QUEUED:
        return {**report, "text": "Queued: it starts when the training worker is free."}
    if status != ModelVersion.Status.TRAINING:
        done = 1.0 if status == ModelVersion.Status.READY else 0.0
        return {**report, "done": done, "elapsed": version.training_seconds,
                "text": f"{version.get_status_display()}."}
    stage = version.stage if version.stage in STAGES else STAGES[0]
    index = STAGES.index(stage)
    earlier = stage_seconds(dataset=version.dataset, backbone=version.backbone)
    shares = earlier or DEFAULT_STAGE_SHARES
    total = sum(shares[name] for name in STAGES) or 1.0
    done = (sum(shares[name] for name in STAGES[:index]) + shares[stage] * version.progress) / total
    elapsed = (timezone.now() - version.started_at).total_seconds() if version.started_at else 0.0
    if earlier:
        left = shares[stage] * (1 - version.progress) + sum(shares[name] for name in STAGES[index + 1:])
    else:
        left = elapsed * (1 - done) / done if done >= ESTIMATE_FROM else None
    text = f"Step {index + 1} of {len(STAGES)}: {stage} · {done:.0%} · {seconds_text(elapsed)} elapsed · " + (
        f"about {seconds_text(left)} left" if left is not None else "estimating the time left")
    return {**report, "step": index + 1, "stage": stage, "done": round(done, 4), "elapsed": round(elapsed, 1),
            "left": None if left is None else round(left, 1), "text": text}


def settings_twin(*, dataset: Dataset, settings: TrainSettings) -> ModelVersion | None:
    """A ready version already trained on the dataset's photos, labels and splits as they are
    now, with these settings: training again would make the same model."""
    examples, class_names = training_examples(dataset=dataset)
    fingerprint = data_fingerprint(examples, class_names, settings)
    return (dataset.model_versions.filter(status=ModelVersion.Status.READY, metrics__fingerprint=fingerprint)
            .order_by("number").first())


def datasets_overview() -> list[dict]:
    """Per dataset: its active version and scores, image counts, a training under way, today's
    answered predictions, and the answers waiting in the review queue (marked wrong; unsure or
    nearly so), with the link to that queue."""
    today = timezone.make_aware(datetime.combine(timezone.localdate(), time.min))
    review = reverse("admin:classifier_reviewitem_changelist")
    rows = []
    for dataset in Dataset.objects.annotate(
        image_count=Count("images", distinct=True),
        included_count=Count("images", filter=Q(images__excluded=False, images__label__isnull=False), distinct=True),
    ).order_by("name"):
        jobs = PredictionJob.objects.filter(dataset=dataset)
        training = training_under_way(dataset=dataset)
        learnt = photos_learnt_since_active(dataset=dataset)
        rows.append({
            "dataset": dataset,
            "active": active_version(dataset=dataset),
            "images": dataset.image_count,
            "included": dataset.included_count,
            "training": training,
            "progress": training_progress(version=training) if training else None,
            "answered_today": jobs.filter(status=PredictionJob.Status.DONE, finished_at__gte=today).count(),
            "waiting": review_waiting_counts(dataset=dataset),
            "learnt": learnt,
            "retrain_due": retrain_suggested(learnt=learnt, training=training),
            "review_url": review + "?" + urlencode({"dataset": dataset.slug}),
        })
    return rows


def training_refusal(*, dataset: Dataset) -> str | None:
    """Why the dataset's photos cannot train now, in a sentence; None when they can."""
    examples, class_names = training_examples(dataset=dataset)
    try:
        training_data_check(examples, class_names)
    except NotTrainable as error:
        return str(error)
    return None


LEARNT_SOURCES = (DatasetImage.Source.FEEDBACK, DatasetImage.Source.REVIEW)


def photos_learnt_since_active(*, dataset: Dataset) -> int:
    """Photos added from feedback or review since the active version's training began (all of
    them when nothing is active)."""
    images = dataset.images.filter(source__in=LEARNT_SOURCES, excluded=False, label__isnull=False)
    active = active_version(dataset=dataset)
    if active is not None and active.started_at is not None:
        images = images.filter(created_at__gt=active.started_at)
    return images.count()


def training_under_way(*, dataset: Dataset) -> ModelVersion | None:
    """The dataset's version queued or training, if any."""
    return dataset.model_versions.filter(
        status__in=(ModelVersion.Status.QUEUED, ModelVersion.Status.TRAINING)).order_by("-number").first()


def retrain_suggested(*, learnt: int, training: ModelVersion | None) -> bool:
    """The one rule: enough photos learnt since the active version (RETRAIN_SUGGESTED_AFTER) and no
    training queued or running."""
    return training is None and learnt >= settings.RETRAIN_SUGGESTED_AFTER


def retrain_due(*, dataset: Dataset) -> bool:
    return retrain_suggested(learnt=photos_learnt_since_active(dataset=dataset),
                             training=training_under_way(dataset=dataset))
