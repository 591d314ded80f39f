import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from dataset import services


class Command(BaseCommand):
    help = (
        "Prepare a local installation for a newcomer: an admin user (password kept in var/), the demo "
        "dataset imported from DEMO_DATA_DIR when that folder exists, and an active model version trained "
        "on it. Safe to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-progress", action="store_true", help="Do not draw a progress bar.")

    def handle(self, *args, no_progress: bool, **options):
        username, password = self.ensure_admin()
        dataset = services.dataset_get_or_create(slug=settings.DEMO_DATASET_SLUG, name="Coffee or not")
        source = settings.DEMO_DATA_DIR
        if source.is_dir():
            self.stdout.write(f"Importing demo photos from {source} …")
            call_command(
                "import_images", str(source), dataset=dataset.slug, no_progress=no_progress, stdout=self.stdout
            )
        else:
            self.stdout.write(self.style.WARNING(
                f"No demo photos at {source}: the dataset “{dataset.name}” is empty. Add your own photos in the "
                "admin (Datasets → Dataset images → Import images: a zip with one folder per label) or with "
                f"`python manage.py import_images FOLDER --dataset {dataset.slug}`."
            ))
        self.ensure_model(dataset, no_progress)
        self.stdout.write(self.style.SUCCESS(
            f"Log in at http://127.0.0.1:8000/admin/ as “{username}” with the password {password} "
            f"(kept in {self.password_file()})."
        ))

    def ensure_model(self, dataset, no_progress: bool) -> None:
        """Train and activate version 1 when the dataset can train and nothing answers yet."""
        from classifier import selectors as classifier_selectors

        if classifier_selectors.active_version(dataset=dataset) is not None:
            return
        try:
            call_command("train", dataset=dataset.slug, activate=True, no_progress=no_progress, stdout=self.stdout)
        except CommandError as error:
            self.stdout.write(self.style.WARNING(f"No model yet: {error}"))

    def password_file(self):
        return settings.VAR_DIR / "admin-password.txt"

    def ensure_admin(self) -> tuple[str, str]:
        """A superuser named admin with a random password, created once and remembered locally."""
        username, password_file = "admin", self.password_file()
        User = get_user_model()
        if password_file.exists() and User.objects.filter(username=username).exists():
            return username, password_file.read_text().strip()
        password = secrets.token_urlsafe(12)
        user, _ = User.objects.get_or_create(username=username, defaults={"is_staff": True, "is_superuser": True})
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        password_file.parent.mkdir(parents=True, exist_ok=True)
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        return username, password
