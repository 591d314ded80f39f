import sys
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from dataset import groups, services, sources
from dataset.models import DatasetImage


class Command(BaseCommand):
    help = (
        "Import photos from a folder or zip with one sub-folder per label (labels and the dataset "
        "are created as needed). Duplicates are skipped, so running it again imports only what is new."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="A folder or a .zip file.")
        parser.add_argument("--dataset", required=True, help="Dataset slug, e.g. coffee.")
        parser.add_argument("--label", help="Label for files that are not inside a label folder.")
        parser.add_argument(
            "--split",
            default=services.AUTO_SPLIT,
            choices=[services.AUTO_SPLIT, *DatasetImage.Split.values],
            help="Split for new images; 'auto' draws a stable 70/15/15 split from each photo's content.",
        )
        parser.add_argument(
            "--groups", type=Path, dest="groups_path",
            help=(
                "A TSV of what each photo shows (columns file and kind, or path and group; paths as in the "
                f"folder). Default: the folder's own {groups.DEFAULT_GROUPS_FILE}, if it has one."
            ),
        )
        parser.add_argument("--no-progress", action="store_true", help="Do not draw a progress bar.")

    def handle(self, *args, path: Path, dataset: str, label: str | None, split: str, no_progress: bool,
               groups_path: Path | None, **options):
        if not path.exists():
            raise CommandError(f"{path} does not exist.")
        try:
            groups_file = groups.groups_file_find(folder=path, given=groups_path)
            table = groups.groups_file_read(path=groups_file) if groups_file else {}
            candidates = (
                sources.zip_candidates(file=path) if path.is_file() else sources.folder_candidates(path=path)
            )
            target = services.dataset_get_or_create(slug=dataset)
            default_label = services.label_get_or_create(dataset=target, name=label) if label else None
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        with tqdm(total=len(candidates), unit="file", disable=no_progress, file=sys.stderr) as bar:
            report = services.dataset_images_import(
                dataset=target,
                candidates=candidates,
                default_label=default_label,
                split=split,
                on_progress=lambda _: bar.update(),
            )
        for name, reason in report.rejected:
            self.stdout.write(f"rejected {name}: {reason}")
        self.stdout.write(self.style.SUCCESS(f"{target.slug}: {report.summary()}"))
        if groups_file:
            applied = groups.import_groups_apply(report=report, groups=table)
            self.stdout.write(
                f"Groups from {groups_file.name}: {applied.new} new photos given theirs; {applied.filled} photos "
                "imported before without a group got theirs now (importing again fills in missing groups)."
            )
