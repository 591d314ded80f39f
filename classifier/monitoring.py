"""What operators read at request time: the /metrics exposition (the processes' samples plus
gauges read from the database and the broker when Prometheus scrapes) and the admin's view of
the queue clusters."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from django.conf import settings
from django.db.models import Count
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from classifier import selectors
from classifier.models import ModelVersion, PredictionJob

logger = logging.getLogger(__name__)

def queue_depths() -> dict[str, int | None]:
    """Tasks waiting in the broker per cluster (None for a broker that does not answer)."""
    from django_q.brokers import get_broker
    from django_q.conf import Conf

    depths = {}
    for cluster in (Conf.PREFIX, settings.TRAINING_CLUSTER):
        try:
            depths[cluster] = get_broker(cluster).queue_size()
        except Exception:  # the broker is down: its gauge goes missing
            logger.exception("The broker of the %s queue does not answer", cluster)
            depths[cluster] = None
    return depths


class DatabaseCollector:
    """Gauges of the queue's state, read when Prometheus scrapes (a few indexed queries)."""

    def collect(self):
        yield from self.queue_gauges()
        yield from self.version_gauges()
        stalled = selectors.prediction_queue_stall(seconds=settings.PREDICTION_STALL_SECONDS) is not None
        yield GaugeMetricFamily(
            "coffeeclassifier_prediction_queue_stalled",
            "1 when photos have waited PREDICTION_STALL_SECONDS and nothing was answered meanwhile.",
            value=int(stalled),
        )

    def queue_gauges(self):
        """The broker's depth per cluster and the prediction jobs waiting by status."""
        depth = GaugeMetricFamily("coffeeclassifier_queue_depth", "Tasks waiting in the broker.", labels=["cluster"])
        for cluster, size in queue_depths().items():
            if size is not None:
                depth.add_metric([cluster], size)
        yield depth
        jobs = GaugeMetricFamily(
            "coffeeclassifier_prediction_jobs", "Prediction jobs waiting (queued) and being answered (running).",
            labels=["status"],
        )
        counts = dict(PredictionJob.objects.filter(status__in=PredictionJob.WAITING).values_list("status")
                      .annotate(n=Count("pk")).order_by())
        for status in PredictionJob.WAITING:
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs

    def version_gauges(self):
        """The active and shadow version per dataset, the active ones' test accuracy, and the
        versions by status."""
        active = GaugeMetricFamily(
            "coffeeclassifier_active_model_version", "The version number that answers for each dataset.",
            labels=["dataset"],
        )
        accuracy = GaugeMetricFamily(
            "coffeeclassifier_model_test_accuracy_ratio", "The active versions' accuracy on their test split.",
            labels=["dataset", "version"],
        )
        for slug, number, test_accuracy in ModelVersion.objects.filter(is_active=True).values_list(
            "dataset__slug", "number", "metrics__test__accuracy"
        ):
            active.add_metric([slug], number)
            if test_accuracy is not None:
                accuracy.add_metric([slug, str(number)], test_accuracy)
        yield active
        yield accuracy
        shadow = GaugeMetricFamily(
            "coffeeclassifier_shadow_model_version", "The version number in shadow for each dataset that has one.",
            labels=["dataset"],
        )
        for slug, number in ModelVersion.objects.filter(is_shadow=True).values_list("dataset__slug", "number"):
            shadow.add_metric([slug], number)
        yield shadow
        trainings = GaugeMetricFamily(
            "coffeeclassifier_model_versions", "Model versions by status (queued and training: in progress).",
            labels=["status"],
        )
        counts = dict(ModelVersion.objects.values_list("status").annotate(n=Count("pk")).order_by())
        for status in ModelVersion.Status.values:
            trainings.add_metric([status], counts.get(status, 0))
        yield trainings


def dead_processes_forget(directory: Path) -> None:
    """Drop the per-process gauges of processes that are gone (killed, or a cluster restarted):
    django-q2 forgets only the workers its own sentinel saw die."""
    for path in directory.glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, str(directory))
        except PermissionError:  # alive, another user's
            pass


def metrics_exposition() -> bytes:
    """Every process's samples in Prometheus' text format, with the database's gauges."""
    dead_processes_forget(settings.PROMETHEUS_MULTIPROC_DIR)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(settings.PROMETHEUS_MULTIPROC_DIR))
    registry.register(DatabaseCollector())
    return generate_latest(registry)


def recent_failures(*, limit: int = 10) -> dict:
    """The latest failed predictions and trainings, with their errors."""
    return {
        "predictions": list(PredictionJob.objects.filter(status=PredictionJob.Status.FAILED)
                            .select_related("dataset").order_by("-finished_at")[:limit]),
        "trainings": list(ModelVersion.objects.filter(status=ModelVersion.Status.FAILED)
                          .select_related("dataset").order_by("-finished_at")[:limit]),
    }
