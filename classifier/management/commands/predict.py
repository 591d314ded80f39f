import json
import time
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from classifier import selectors
from classifier.ml import metrics
from classifier.ml.predictor import Predictor
from dataset.models import Dataset
from dataset.sources import is_skipped
from dataset.validation import image_validate


class Command(BaseCommand):
    help = "Classify photos (files or folders) with a dataset's active or given version: one JSON line per file."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # --version names a model version here; "resolve" lets it replace Django's own --version.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path, help="Photos, or folders searched recursively.")
        parser.add_argument(
            "--dataset", default=settings.DEFAULT_DATASET_SLUG,
            help=f"Dataset slug (default: {settings.DEFAULT_DATASET_SLUG}).",
        )
        parser.add_argument(
            "--version", type=int, dest="model_version_number", help="Version number (default: the active one)."
        )
        parser.add_argument("--json", action="store_true", dest="json_lines", help="One JSON object per line.")

    def handle(self, *args, paths, dataset, model_version_number, json_lines, **options):
        target = Dataset.objects.filter(slug=dataset).first()
        if target is None:
            raise CommandError(f"There is no dataset “{dataset}”.")
        try:
            model_version = selectors.ready_version(dataset=target, number=model_version_number)
        except LookupError as error:
            raise CommandError(str(error)) from None
        predictor = Predictor(selectors.artifact_path(version=model_version))
        failures = 0
        for path in files_of(paths):
            record = {"path": str(path)}
            try:
                data = path.read_bytes()
                started = time.perf_counter()
                # the validation's decode is the model's: each file is decoded once, and its time,
                # checks included, is the file's preprocessing
                valid = image_validate(data=data, name=str(path), decode=predictor.model_input)
                preprocess_ms = (time.perf_counter() - started) * 1000
                prediction = predictor.predict_model_input(valid.decoded, preprocess_ms=preprocess_ms)
            except (ValidationError, OSError) as error:  # one unreadable file must not stop a batch
                failures += 1
                record["error"] = " ".join(error.messages) if isinstance(error, ValidationError) else str(error)
            else:
                record.update(
                    label=prediction.label,
                    confidence=round(prediction.confidence, 6),
                    probabilities={name: round(p, 6) for name, p in prediction.probabilities.items()},
                    decision=prediction.decision,
                    version=model_version.number,
                    preprocess_ms=round(prediction.preprocess_ms, 3),
                    inference_ms=round(prediction.inference_ms, 3),
                )
            self.stdout.write(json.dumps(record) if json_lines else as_text(record))
        if failures:
            raise CommandError(f"{failures} file(s) could not be classified; see their \"error\".")


def as_text(record: dict) -> str:
    if "error" in record:
        return f"{record['path']}: {record['error']}"
    unsure = ", not sure" if record["decision"] == metrics.UNSURE else ""
    return f"{record['path']}: {record['label']} ({record['confidence']:.1%}{unsure}, version {record['version']})"


def files_of(paths: list[Path]):
    for path in paths:
        if path.is_dir():
            yield from (
                file for file in sorted(path.rglob("*"))
                if file.is_file() and not is_skipped(file.relative_to(path).parts)
            )
        elif path.exists():
            yield path
        else:
            raise CommandError(f"{path} does not exist.")
