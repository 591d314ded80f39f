from django.core.management.base import BaseCommand, CommandError

from classifier.services.maintenance import prediction_jobs_purge


class Command(BaseCommand):
    help = "Delete prediction jobs older than a number of days, with their photos."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=float, required=True, metavar="DAYS")

    def handle(self, *args, older_than, **options):
        if older_than < 0:
            raise CommandError("--older-than must be a number of days, 0 or more.")
        count = prediction_jobs_purge(older_than_days=older_than)
        self.stdout.write(f"{count} prediction jobs deleted.")
