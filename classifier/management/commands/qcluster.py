"""`manage.py qcluster`: django-q2's cluster under a supervisor that heals it (classifier/cluster.py)."""

from functools import partial

from django.conf import settings
from django.core.management.base import BaseCommand
from django_q.conf import Conf

from classifier.cluster import Supervisor
from classifier.services.maintenance import prediction_jobs_requeue_stale, prediction_queue_watchdog


class Command(BaseCommand):
    help = (
        "Starts a queue cluster (Q_CLUSTER_NAME=training for the training cluster). It starts again by "
        "itself when its processes die or, on the prediction cluster, when photos wait and nothing is "
        "answered for PREDICTION_STALL_SECONDS; SIGTERM or Ctrl-C stop it within Q_STOP_GRACE_SECONDS."
    )

    def handle(self, *args, **options):
        predictions = Conf.CLUSTER_NAME != settings.TRAINING_CLUSTER
        stall = settings.PREDICTION_STALL_SECONDS
        Supervisor(
            watchdog=partial(prediction_queue_watchdog, stall_seconds=stall) if predictions else None,
            settle_seconds=stall,
            grace_seconds=settings.Q_STOP_GRACE_SECONDS,
            after_restart=partial(prediction_jobs_requeue_stale, older_than_seconds=stall)
            if predictions else None,
        ).run()
