"""`manage.py evaluate`: cross-validation over a dataset's photos, beside the plain baseline."""

import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from classifier import selectors
from classifier.ml.crossval import folds_assign
from dataset import services
from dataset.models import DatasetImage

BACKBONE = "mobilenet_025"


def evaluate(dataset, *args: str) -> str:
    out = io.StringIO()
    call_command("evaluate", "--dataset", dataset.slug, "--backbone", BACKBONE, "--baseline-backbone", BACKBONE,
                 "--no-progress", *args, stdout=out)
    return out.getvalue()


def test_folds_keep_clusters_together_and_each_label_spread():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], [30, 20])
    clusters = np.arange(50)
    clusters[[3, 4, 5]] = 3  # three copies of one picture
    clusters[[40, 41]] = 40
    fold_of = folds_assign(labels, rng.permutation(clusters.max() + 1)[clusters], folds=5, seed=7)
    assert len(set(fold_of[[3, 4, 5]])) == 1 and len(set(fold_of[[40, 41]])) == 1
    for label, total in ((0, 30), (1, 20)):
        per_fold = np.bincount(fold_of[labels == label], minlength=5)
        assert per_fold.max() - per_fold.min() <= 2 and per_fold.sum() == total
    assert not np.array_equal(fold_of, folds_assign(labels, clusters, folds=5, seed=8))  # the seed deals


@pytest.mark.django_db
def test_near_duplicates_share_a_cluster(small_dataset):
    image = small_dataset.images.filter(label__name="coffee").first()
    with Image.open(image.file.path) as original:
        smaller = io.BytesIO()
        original.resize((original.width // 2, original.height // 2)).save(smaller, "JPEG", quality=80)
    copy = services.dataset_image_create(dataset=small_dataset, data=smaller.getvalue(), label=image.label, split="val")
    keys = list(small_dataset.images.order_by("sha256").values_list("sha256", flat=True))
    clusters = selectors.near_duplicate_clusters(dataset=small_dataset, keys=keys)
    cluster_of = dict(zip(keys, clusters))
    assert cluster_of[image.sha256] == cluster_of[copy.sha256]
    assert len(set(clusters)) == len(keys) - 1


@pytest.mark.django_db
def test_evaluate_prints_overall_per_label_and_per_group_figures_beside_the_baseline(small_dataset, keras_home):
    def some(count, **lookups):
        chosen = small_dataset.images.filter(**lookups)[:count].values_list("pk", flat=True)
        return DatasetImage.objects.filter(pk__in=list(chosen))

    some(1, split="test").update(split="unassigned")  # every labelled photo counts
    some(2, label__name="coffee", split="train").update(excluded=True)  # excluded ones do not
    output = evaluate(small_dataset, "--folds", "3", "--seed", "2")
    lines = output.splitlines()
    assert lines[0] == "Cross-validation of coffee: 38 photos (38 near-duplicate clusters), 3 folds, seed 2"
    assert lines[1].startswith(f"model: {BACKBONE}, trained as `train` trains a version")
    assert lines[2].startswith(f"baseline: {BACKBONE} frozen embeddings + logistic regression")
    assert lines[3].split() == ["model", "baseline"]
    figures = {line[:28].strip(): line[28:].split() for line in lines[4:]}
    for what in ("accuracy", "coffee (18)", "not_coffee (20)", "calibration error, raw", "answered (not unsure)",
                 "accuracy of the answered", "juice (4)", "cat (6)", "latte_art (18)", "imagenet_other (10)"):
        model, baseline = figures[what]
        assert model.endswith("%") and baseline.endswith("%"), (what, figures)
    assert figures["answered (not unsure)"][1] == "100.0%"  # the baseline always answers
    assert float(figures["accuracy"][0].rstrip("%")) >= 75  # real photos, real backbone: better than chance
    groups = lines[lines.index(next(line for line in lines if line.startswith("group (photos), worst first"))) + 1:]
    accuracies = [float(line.split()[-2].rstrip("%")) for line in groups]
    assert len(groups) == 4 and accuracies == sorted(accuracies)
    assert evaluate(small_dataset, "--folds", "3", "--seed", "2") == output  # deterministic


@pytest.mark.django_db
def test_evaluate_refuses_what_it_cannot_measure(small_dataset):
    with pytest.raises(CommandError, match="at least 30 photos of each"):
        evaluate(small_dataset, "--folds", "30")
    with pytest.raises(CommandError, match="at least 2 folds"):
        evaluate(small_dataset, "--folds", "1")
    with pytest.raises(CommandError, match="no dataset “nothing”"):
        call_command("evaluate", "--dataset", "nothing")
    assert DatasetImage.objects.count() == 40
