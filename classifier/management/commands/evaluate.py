import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from classifier.ml.backbones import BACKBONES
from classifier.services.evaluation import BASELINE_BACKBONE, dataset_cross_validate
from dataset.models import Dataset


class Command(BaseCommand):
    help = (
        "Cross-validate a training configuration on every included, labelled photo of a dataset (stratified "
        "k folds, near-duplicates in one fold) and print overall, per-label and per-group accuracy, calibration "
        "error and coverage beside the plain baseline (frozen embeddings + logistic regression)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, help="Dataset slug, e.g. coffee.")
        parser.add_argument("--folds", type=int, default=5, help="Number of folds (default 5).")
        parser.add_argument("--backbone", choices=list(BACKBONES), help="Default: the training's default.")
        parser.add_argument("--baseline-backbone", choices=list(BACKBONES), default=BASELINE_BACKBONE,
                            help=f"Backbone of the plain baseline (default {BASELINE_BACKBONE}).")
        parser.add_argument("--seed", type=int, default=0, help="Seeds the assignment of photos to folds.")
        parser.add_argument("--no-progress", action="store_true", help="Do not draw progress bars.")

    def handle(self, *args, dataset, folds, backbone, baseline_backbone, seed, no_progress, **options):
        target = Dataset.objects.filter(slug=dataset).first()
        if target is None:
            raise CommandError(f"There is no dataset “{dataset}”; import photos with import_images first.")
        bars: dict[str, tqdm] = {}

        def progress(stage, fraction):
            if stage not in bars:
                bars[stage] = tqdm(total=100, desc=f"{stage:20}", unit="%", disable=no_progress, file=sys.stderr)
            bars[stage].update(round(fraction * 100) - bars[stage].n)

        try:
            result = dataset_cross_validate(
                dataset=target, folds=folds, backbone=backbone, baseline_backbone=baseline_backbone, seed=seed,
                on_progress=progress,
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        finally:
            for bar in bars.values():
                bar.close()
        self.stdout.write(report(target, result, seed))


def percent(value) -> str:
    return "–" if value is None else f"{value:.1%}"


def report(dataset: Dataset, result: dict, seed: int) -> str:
    """The model's figures beside the baseline's, one row each; groups worst first (by the model)."""
    model, baseline = result["model"], result["baseline"]
    width = 28

    def row(what: str, model_value, baseline_value) -> str:
        return f"{what[:width]:{width}} {model_value:>12} {baseline_value:>12}"

    lines = [
        (
            f"Cross-validation of {dataset.slug}: {result['photos']} photos ({result['clusters']} near-duplicate "
            f"clusters), {result['folds']} folds, seed {seed}"
        ),
        (
            f"model: {model['backbone']}, trained as `train` trains a version (L2, temperature, threshold and "
            "“unsure” chosen on an inner validation split)"
        ),
        f"baseline: {baseline['backbone']} frozen embeddings + logistic regression, no augmentation, threshold 0.5",
        row("", "model", "baseline"),
        row("accuracy", percent(model["accuracy"]), percent(baseline["accuracy"])),
    ]
    for label, scores in model["per_label"].items():
        lines.append(row(f"  {label} ({scores['count']})", percent(scores["accuracy"]),
                         percent(baseline["per_label"][label]["accuracy"])))
    lines += [
        row("calibration error, raw", percent(model["ece_before"]), percent(baseline["ece_before"])),
        row("calibration error, scaled", percent(model["ece_after"]), "–"),
        row("answered (not unsure)", percent(model["coverage"]), percent(baseline["coverage"])),
        row("accuracy of the answered", percent(model["answered_accuracy"]), percent(baseline["answered_accuracy"])),
    ]
    if model["per_group"]:
        lines.append(row("group (photos), worst first", "", ""))
        for group, scores in model["per_group"].items():
            lines.append(row(f"  {group} ({scores['count']})", percent(scores["accuracy"]),
                             percent(baseline["per_group"][group]["accuracy"])))
    return "\n".join(lines)
