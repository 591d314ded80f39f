"""Read helpers for shadow mode: how a version in shadow compares with the answers given beside it,
and what shadowing costs the workers."""

from __future__ import annotations

from statistics import median

from django.db.models import Avg, Count, F, Q, QuerySet

from classifier.models import ModelVersion, PredictionJob, WorkerProcess

GALLERY_SIZE = 48


def shadowed_jobs(*, version: ModelVersion) -> QuerySet[PredictionJob]:
    """Answered jobs that hold a shadow answer of `version`."""
    return PredictionJob.objects.filter(shadow_version=version, status=PredictionJob.Status.DONE).exclude(
        shadow_label=""
    )


def shadow_disagreements(*, version: ModelVersion) -> QuerySet[PredictionJob]:
    """The shadowed jobs where `version` gave another label than the answer, newest first: the
    photos a curator should label to tell which version is right."""
    return (
        shadowed_jobs(version=version).exclude(label=F("shadow_label"))
        .select_related("model_version").order_by("-finished_at")
    )


def shadow_report(*, version: ModelVersion) -> dict:
    """What the version page shows of its shadowing: jobs shadowed, agreement rate (None before
    any), how many each version was unsure of (among the jobs that record both decisions), the
    newest disagreements, the worker time it added per job (mean shadow_ms beside the mean decode
    and inference of the answers on the same photos) and the memory it added per worker process
    that loaded it (`WorkerProcess.shadow_bytes`)."""
    both_decided = ~Q(decision="") & ~Q(shadow_decision="")  # older jobs recorded no decision
    totals = shadowed_jobs(version=version).aggregate(
        jobs=Count("pk"), agreed=Count("pk", filter=Q(label=F("shadow_label"))),
        decided=Count("pk", filter=both_decided),
        unsure=Count("pk", filter=both_decided & Q(decision=PredictionJob.Decision.UNSURE)),
        shadow_unsure=Count("pk", filter=both_decided & Q(shadow_decision=PredictionJob.Decision.UNSURE)),
        shadow_ms=Avg("shadow_ms"), inference_ms=Avg("inference_ms"), preprocess_ms=Avg("preprocess_ms"),
    )
    jobs = totals["jobs"]
    answer_ms = (totals["inference_ms"] or 0) + (totals["preprocess_ms"] or 0)
    grown = list(
        WorkerProcess.objects.filter(versions__contains=shadow_mark(version), shadow_bytes__gt=0)
        .values_list("shadow_bytes", flat=True)
    )
    return {
        "is_shadow": version.is_shadow,
        "jobs": jobs,
        "agreed": totals["agreed"],
        "disagreed": jobs - totals["agreed"],
        "agreement": totals["agreed"] / jobs if jobs else None,
        "decided": totals["decided"],
        "unsure": totals["unsure"],
        "shadow_unsure": totals["shadow_unsure"],
        "disagreements": list(shadow_disagreements(version=version)[:GALLERY_SIZE]),
        "shadow_ms": totals["shadow_ms"],
        "inference_ms": totals["inference_ms"],
        "preprocess_ms": totals["preprocess_ms"],
        "added_time": totals["shadow_ms"] / answer_ms if jobs and answer_ms and totals["shadow_ms"] else None,
        "workers_measured": len(grown),
        "memory_bytes": median(grown) if grown else None,
    }


def shadow_mark(version: ModelVersion) -> str:
    """How a worker names the shadow it holds on its row (`metrics.loaded_versions`)."""
    return f"{version.dataset.slug} v{version.number} (shadow)"
