from django.conf import settings
from django.core.management.base import BaseCommand

from classifier.services.maintenance import (
    model_versions_fail_stale,
    model_versions_requeue_lost,
    prediction_jobs_requeue_stale,
)
from dataset import imports


class Command(BaseCommand):
    help = (
        "Queue again the prediction jobs that waited too long (lost by a broker, or left running by a "
        "worker that died); fail those sent too often, and trainings and imports whose worker was stopped; queue "
        "again trainings whose task a broker lost. Run it "
        "from cron, or let the queue cluster's schedule run it every minute."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than", type=float, default=settings.PREDICTION_STALE_SECONDS,
            help=f"Seconds a job may wait queued or running (default {settings.PREDICTION_STALE_SECONDS}).",
        )

    def handle(self, *args, older_than, **options):
        counts = prediction_jobs_requeue_stale(older_than_seconds=older_than)
        trainings = model_versions_fail_stale(older_than_seconds=settings.TRAINING_TIMEOUT + 60)
        lost_trainings = model_versions_requeue_lost(older_than_seconds=older_than)
        stopped_imports = imports.import_runs_fail_stale(older_than_seconds=settings.TRAINING_TIMEOUT + 60)
        self.stdout.write(
            f"{counts['requeued']} jobs queued again, {counts['failed']} failed after too many attempts; "
            f"{trainings} stopped trainings marked failed, {lost_trainings} lost trainings queued again, "
            f"{stopped_imports} stopped imports marked failed."
        )
