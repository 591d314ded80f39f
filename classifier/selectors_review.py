"""Read helpers of the learning loop: the review queue, what waits in it, and the field set (real
traffic whose true label is known) with the scores versions got on it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import F, Q, QuerySet

from classifier.models import FieldScore, FieldScoring, ModelVersion, PredictionJob
from dataset.models import Dataset

# An answer whose top two probabilities are closer than this is worth a curator's look. Its
# confidence is then below (1 + REVIEW_MARGIN) / 2: for two labels that is the same test, for
# more labels it also takes in some answers whose margin is wider.
REVIEW_MARGIN = 0.3
LOW_CONFIDENCE = (1 + REVIEW_MARGIN) / 2


@dataclass(frozen=True)
class ReviewTier:
    """One kind of photo in the review queue: which jobs, in which order, under which name."""

    name: str
    condition: Q
    order_by: tuple[str, ...]


# The queue shows the tiers in this order: answers people said were wrong, then answers the model
# was unsure of or nearly so, then answers a version in shadow disagreed with.
REVIEW_TIERS = (
    ReviewTier("wrong", Q(feedback=PredictionJob.Feedback.WRONG), ("-feedback_at", "-queued_at")),
    ReviewTier(
        "unsure",
        Q(feedback=PredictionJob.Feedback.NONE)
        & (Q(decision=PredictionJob.Decision.UNSURE) | Q(confidence__lt=LOW_CONFIDENCE)),
        ("confidence", "-queued_at"),
    ),
    ReviewTier(
        "disagreement",
        Q(feedback=PredictionJob.Feedback.NONE) & ~Q(shadow_label="") & ~Q(shadow_label=F("label")),
        ("-queued_at",),
    ),
)


def review_candidates(*, dataset: Dataset) -> QuerySet[PredictionJob]:
    """Answered jobs of the dataset that no curator has labelled yet."""
    return PredictionJob.objects.filter(dataset=dataset, status=PredictionJob.Status.DONE, reviewed_at__isnull=True)


def review_queue(*, dataset: Dataset, skipped: Iterable[str] = (), limit: int = 120) -> list[PredictionJob]:
    """Up to `limit` jobs to label, the most useful first (REVIEW_TIERS), leaving out `skipped`
    (job ids); each carries `review_tier`, the name of its tier."""
    skipped = list(skipped)
    queue: list[PredictionJob] = []
    for tier in REVIEW_TIERS:
        if len(queue) >= limit:
            break
        jobs = (
            review_candidates(dataset=dataset).filter(tier.condition)
            .exclude(pk__in=skipped + [job.pk for job in queue]).select_related("model_version", "feedback_label")
            .order_by(*tier.order_by)[: limit - len(queue)]
        )
        for job in jobs:
            job.review_tier = tier.name
            queue.append(job)
    return queue


def review_waiting_counts(*, dataset: Dataset | None = None) -> dict[str, int]:
    """{tier name: jobs waiting in it} (a job in two tiers counts in the first), for the admin home;
    all datasets unless one is named."""
    candidates = PredictionJob.objects.filter(status=PredictionJob.Status.DONE, reviewed_at__isnull=True)
    if dataset is not None:
        candidates = candidates.filter(dataset=dataset)
    counts: dict[str, int] = {}
    earlier: Q | None = None
    for tier in REVIEW_TIERS:
        jobs = candidates.filter(tier.condition)
        counts[tier.name] = (jobs if earlier is None else jobs.exclude(earlier)).count()
        earlier = tier.condition if earlier is None else earlier | tier.condition
    return counts


# A job's true label is known when a curator reviewed it, when feedback said the answer was wrong
# and named the right label, or when feedback said the answer was right.
KNOWN_TRUTH = (
    Q(review_label__isnull=False)
    | Q(feedback=PredictionJob.Feedback.WRONG, feedback_label__isnull=False)
    | Q(feedback=PredictionJob.Feedback.CORRECT)
)


@dataclass(frozen=True)
class FieldPhoto:
    job_id: str
    image: object  # the job's FieldFile
    label: str


def field_jobs(*, dataset: Dataset) -> QuerySet[PredictionJob]:
    return PredictionJob.objects.filter(KNOWN_TRUTH, dataset=dataset, status=PredictionJob.Status.DONE)


def true_label(job: PredictionJob) -> str:
    """A curator's review first, then the label feedback named for a wrong answer, else the answer."""
    if job.review_label_id:
        return job.review_label.name
    if job.feedback == PredictionJob.Feedback.WRONG:
        return job.feedback_label.name
    return job.label


def field_photos(*, dataset: Dataset) -> list[FieldPhoto]:
    """The field set: every answered photo of the dataset with a known true label, oldest first."""
    jobs = field_jobs(dataset=dataset).select_related("review_label", "feedback_label").order_by("queued_at", "pk")
    return [FieldPhoto(job_id=str(job.pk), image=job.image, label=true_label(job)) for job in jobs]


def ready_versions(*, dataset: Dataset) -> QuerySet[ModelVersion]:
    return dataset.model_versions.filter(status=ModelVersion.Status.READY).order_by("number")


def field_scores_latest(*, dataset: Dataset) -> list[FieldScore]:
    """Each ready version's latest field score (versions never scored are left out), newest version first."""
    latest = []
    for version in ready_versions(dataset=dataset).order_by("-number"):
        score = version.field_scores.order_by("-scored_at", "-pk").first()
        if score is not None:
            score.version = version
            latest.append(score)
    return latest


def field_scoring_latest(*, dataset: Dataset) -> FieldScoring | None:
    return dataset.field_scorings.order_by("-requested_at", "-pk").first()


def versions_scores(*, dataset: Dataset) -> list[dict]:
    """The dataset's versions, newest first, with their test scores, their latest field-set
    accuracy (None until a scoring reached them) and state flags, as the API lists them."""
    field_accuracy = {score.version_id: score.accuracy for score in field_scores_latest(dataset=dataset)}
    return [
        {"number": version.number, "status": version.status, "backbone": version.backbone,
         "created_at": version.created_at, "finished_at": version.finished_at,
         **{f"test_{key}": (version.metrics.get("test") or {}).get(key)
            for key in ("accuracy", "roc_auc", "coverage", "answered_accuracy")},
         "field_accuracy": field_accuracy.get(version.pk), "is_active": version.is_active,
         "is_shadow": version.is_shadow}
        for version in dataset.model_versions.order_by("-number")
    ]
