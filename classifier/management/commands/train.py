import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from classifier.ml.backbones import BACKBONES, DEFAULT_BACKBONE
from classifier.models import ModelVersion
from classifier.selectors import worst_first
from classifier.services.training import (
    WorseThanActive,
    model_version_activate,
    model_version_request,
    model_version_train,
)
from dataset.models import Dataset

BAR = "{desc} {bar} {n:3.0f}% [{elapsed}<{remaining}]"  # a percentage, no rate ("%/s" means nothing)
GROUPS_SHOWN = 12


class Command(BaseCommand):
    help = "Train a new version of a dataset's model in this process, show its metrics, optionally activate it."

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, help="Dataset slug, e.g. coffee.")
        parser.add_argument("--backbone", choices=list(BACKBONES), help=f"Default: {DEFAULT_BACKBONE}.")
        parser.add_argument("--epochs", type=int, help="Full-batch steps of the head (default 500).")
        parser.add_argument("--activate", action="store_true", help="Make the new version answer predictions.")
        parser.add_argument("--no-progress", action="store_true", help="Do not draw progress bars.")

    def handle(self, *args, dataset, backbone, epochs, activate, no_progress, **options):
        target = Dataset.objects.filter(slug=dataset).first()
        if target is None:
            raise CommandError(f"There is no dataset “{dataset}”; import photos with import_images first.")
        try:
            version = model_version_request(dataset=target, backbone=backbone, epochs=epochs, enqueue=False)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(f"Training {version} ({version.backbone}) …")
        bars: dict[str, tqdm] = {}

        def progress(stage, fraction):
            if stage not in bars:
                for bar in bars.values():
                    bar.close()
                bars[stage] = tqdm(total=100, desc=f"{stage:10}", bar_format=BAR, disable=no_progress, file=sys.stderr)
            bars[stage].update(round(fraction * 100) - bars[stage].n)

        with logging_redirect_tqdm():  # log lines print above the bars, not inside them
            version = model_version_train(version=version, on_progress=progress)
        for bar in bars.values():
            bar.close()
        if version.status != ModelVersion.Status.READY:
            raise CommandError(f"Training of {version} failed: {version.error}")
        self.stdout.write(metrics_table(version))
        if activate:
            try:
                model_version_activate(version=version)
            except WorseThanActive as refusal:
                raise CommandError(f"{refusal.message} {version} is ready but not active: to activate it anyway, "
                                   "confirm on its admin page.") from refusal
            self.stdout.write(self.style.SUCCESS(f"{version} is now active."))
        else:
            self.stdout.write("Activate it in the admin, or train with --activate.")


def metrics_table(version: ModelVersion) -> str:
    metrics = version.metrics
    lines = [
        (
            f"{version}: {version.backbone}, {version.training_seconds:.1f} s, "
            f"threshold {version.threshold if version.threshold is not None else 'argmax'}, "
            f"TFLite {metrics['tflite_bytes'] / 1e6:.1f} MB, parity {metrics['parity_max_abs_diff']:.1e}"
        ),
        f"{'split':6} {'images':>6} {'accuracy':>9} {'ROC AUC':>8} {'answered':>9} {'accuracy answered':>18}",
    ]
    for split in ("train", "val", "test"):
        if split in metrics:
            scores = metrics[split]
            auc, coverage, answered = (scores.get(key) for key in ("roc_auc", "coverage", "answered_accuracy"))
            lines.append(
                f"{split:6} {scores['count']:6d} {scores['accuracy']:9.2%} {'–' if auc is None else f'{auc:.4f}':>8} "
                f"{'–' if coverage is None else f'{coverage:.1%}':>9} {'–' if answered is None else f'{answered:.2%}':>18}"
            )
    calibration = metrics.get("calibration") or {}
    for split in ("val", "test"):
        if f"ece_{split}_before" in calibration:
            lines.append(
                f"calibration error ({split}): {calibration[f'ece_{split}_before']:.2%} before, "
                f"{calibration[f'ece_{split}_after']:.2%} after temperature {calibration['temperature']:.2f}"
            )
    if calibration.get("unsure_below"):
        lines.append(f"answers below {calibration['unsure_below']:.1%} confidence are “unsure”")
    for split in ("val", "test"):
        if split not in metrics:
            continue
        lines.append(f"{'label':20} {'precision':>9} {'recall':>7} {'F1':>6} {'images':>6}  ({split})")
        for label, scores in metrics[split]["per_class"].items():
            lines.append(
                f"{label[:20]:20} {scores['precision']:9.2%} {scores['recall']:7.2%} {scores['f1']:6.3f} "
                f"{scores['support']:6d}"
            )
        if metrics[split].get("per_group"):
            lines.append(f"{'group, worst first':20} {'accuracy':>9} {'images':>7}  ({split})")
            for group, scores in worst_first(metrics[split]["per_group"])[:GROUPS_SHOWN]:
                lines.append(f"{group[:20]:20} {scores['accuracy']:9.2%} {scores['count']:7d}")
            if len(metrics[split]["per_group"]) > GROUPS_SHOWN:
                lines.append(f"… and {len(metrics[split]['per_group']) - GROUPS_SHOWN} more groups (the version's page)")
    return "\n".join(lines)
