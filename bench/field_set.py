"""How long scoring one version on a field set of 1 000 photos takes (goal: at most 30 s).

    KERAS_HOME=../shared/keras .venv/bin/python bench/field_set.py [--backbone efficientnet_lite0] [--photos 1000]

On a throw-away SQLite database, MEDIA_ROOT and ML cache under var/field-set-bench/: trains one
version of the backbone on 40 demo photos (12 train, 4 val, 4 test per label), then stores the
other demo photos (1 035 of them; repeated if --photos asks for more) as answered prediction jobs
with feedback "right" and their folder's label, and times `field_set_score`, the training
cluster's task, in this process: each photo read from MEDIA_ROOT, hashed, decoded and resized as
serving does, run through the version's LiteRT model (FIELD_SET_THREADS threads), and the
scores written. The time of queueing the task is not in the figure.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data" / "coffee-or-not")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "field-set-bench")
    arguments = parser.parse_args()
    shutil.rmtree(arguments.work, ignore_errors=True)
    arguments.work.mkdir(parents=True)
    os.environ.update(
        DATABASE_URL=f"sqlite:///{arguments.work / 'db.sqlite3'}", MEDIA_ROOT=str(arguments.work / "media"),
        ML_CACHE_DIR=str(arguments.work / "cache"), DJANGO_SETTINGS_MODULE="coffeeclassifier.settings",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    version = trained_version(arguments.source, arguments.backbone)
    stored = field_jobs_store(version, arguments.source, arguments.photos)
    from django.conf import settings

    from classifier.models import FieldScore, FieldScoring
    from classifier.services.field_set import field_set_score

    scoring = FieldScoring.objects.create(dataset=version.dataset)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    field_set_score(scoring_id=scoring.pk)
    seconds = time.perf_counter() - started
    print(f"load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores")
    score = FieldScore.objects.get(scoring=scoring, version=version)
    print(f"{version} ({arguments.backbone}), {stored} field photos ({arguments.photos} asked), "
          f"FIELD_SET_THREADS={settings.FIELD_SET_THREADS}: scored {score.photos} photos in {seconds:.1f} s "
          f"({seconds / max(score.photos, 1) * 1000:.1f} ms a photo), accuracy {score.accuracy:.4f}, "
          f"left out {score.left_out or 'none'}")


def trained_version(source: Path, backbone: str):
    """A ready version trained on 40 demo photos (every 7th per label)."""
    from django.core.management import call_command

    from classifier.models import ModelVersion
    from dataset.models import Dataset, DatasetImage, Label
    from dataset.services import dataset_image_create

    dataset = Dataset.objects.create(name="Bench", slug="bench")
    for label_name in ("coffee", "not_coffee"):
        label = Label.objects.create(dataset=dataset, name=label_name)
        paths = iter(sorted((source / label_name).glob("*.jpg"))[::7])
        for split, count in (("train", 12), ("val", 4), ("test", 4)):
            for _ in range(count):
                path = next(paths)
                dataset_image_create(dataset=dataset, data=path.read_bytes(), name=path.name, label=label,
                                     split=split, source=DatasetImage.Source.IMPORT)
    call_command("train", "--dataset", "bench", "--backbone", backbone, "--activate", "--no-progress",
                 stdout=io.StringIO())
    return ModelVersion.objects.get(dataset=dataset, number=1, status=ModelVersion.Status.READY)


def field_jobs_store(version, source: Path, count: int) -> int:
    """`count` answered jobs with feedback "right" and the label of their photo's folder: the demo
    photos the version did not train on, repeated in order when there are fewer."""
    from django.core.files.base import ContentFile
    from django.utils import timezone

    from classifier.models import PredictionJob
    from dataset.imaging import content_sha256

    in_dataset = set(version.dataset.images.values_list("sha256", flat=True))
    photos = [(path.parent.name, path.read_bytes()) for path in sorted(source.glob("*/*.jpg"))]
    photos = [(label, data) for label, data in photos if content_sha256(data) not in in_dataset]
    for index in range(count):
        label, data = photos[index % len(photos)]
        job = PredictionJob(dataset=version.dataset, image_format="JPEG", status=PredictionJob.Status.DONE,
                            label=label, confidence=1.0, model_version=version,
                            feedback=PredictionJob.Feedback.CORRECT, feedback_at=timezone.now())
        job.image.save("upload.jpg", ContentFile(data), save=False)
        job.save(force_insert=True)
    return len(photos)


if __name__ == "__main__":
    main()
