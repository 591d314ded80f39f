"""Curation services: stable splits, stratified re-split, duplicates, labels."""

import hashlib
from collections import Counter

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from PIL import Image

from dataset import selectors, services
from dataset.models import Dataset, DatasetImage, Label
from tests.photos import encode, jpeg, photo

pytestmark = pytest.mark.django_db


def variants(count: int, seed: int):
    """`count` distinct real photos: crops of scikit-image samples at different places."""
    rng = np.random.default_rng(seed)
    base = np.concatenate([np.asarray(photo(name, size=(480, 480))) for name in ("coffee", "astronaut", "rocket")])
    for _ in range(count):
        top, left = rng.integers(0, base.shape[0] - 96), rng.integers(0, 480 - 96)
        yield encode(Image.fromarray(base[top : top + 96, left : left + 96]), "PNG")


@pytest.fixture
def labelled(dataset):
    """40 'a' and 20 'b' photos, all unassigned."""
    a, b = Label.objects.create(dataset=dataset, name="a"), Label.objects.create(dataset=dataset, name="b")
    for index, data in enumerate(variants(60, seed=1)):
        services.dataset_image_create(dataset=dataset, data=data, name=f"{index}.png", label=a if index < 40 else b,
                                      split="unassigned")
    return dataset


def split_of(dataset: Dataset) -> dict[str, str]:
    return dict(dataset.images.values_list("sha256", "split"))


def test_resplit_is_stratified_and_deterministic(labelled):
    counts = services.dataset_images_resplit(images=labelled.images.all(), seed=7)
    per_label = Counter(labelled.images.values_list("label__name", "split"))
    assert per_label == {("a", "train"): 28, ("a", "val"): 6, ("a", "test"): 6,
                         ("b", "train"): 14, ("b", "val"): 3, ("b", "test"): 3}
    assert counts == {"train": 42, "val": 9, "test": 9}
    first = split_of(labelled)
    services.dataset_images_set_split(images=labelled.images.all(), split="unassigned")
    services.dataset_images_resplit(images=labelled.images.order_by("-id"), seed=7)
    assert split_of(labelled) == first
    services.dataset_images_resplit(images=labelled.images.all(), seed=8)
    assert split_of(labelled) != first


def test_resplit_keeps_near_duplicates_in_one_split(dataset):
    label = Label.objects.create(dataset=dataset, name="photo")
    names = ("coffee", "chelsea", "astronaut", "rocket", "immunohistochemistry", "camera")
    for name in names:
        services.dataset_image_create(dataset=dataset, data=jpeg(name), name=name, label=label)
        smaller = encode(photo(name, size=(200, 150)), "JPEG", quality=60)
        services.dataset_image_create(dataset=dataset, data=smaller, name=f"{name}-small", label=label)
    for seed in range(5):
        services.dataset_images_resplit(images=dataset.images.all(), train=0.5, val=0.0, test=0.5, seed=seed)
        splits = dict(dataset.images.values_list("original_name", "split"))
        assert all(splits[name] == splits[f"{name}-small"] for name in names), splits
    assert not selectors.near_duplicate_ids(images=dataset.images.all(), across_splits=True)


def test_resplit_refuses_shares_that_do_not_add_up(labelled):
    with pytest.raises(ValidationError, match="add up to 100"):
        services.dataset_images_resplit(images=labelled.images.all(), train=0.8, val=0.15, test=0.15)


def test_automatic_split_is_stable_and_near_70_15_15(labelled):
    shares = Counter(services.split_for_content(hashlib.sha256(str(i).encode()).hexdigest()) for i in range(3000))
    assert abs(shares["train"] / 3000 - 0.70) < 0.04 and abs(shares["test"] / 3000 - 0.15) < 0.03
    image = labelled.images.first()
    assert services.split_for_content(image.sha256) == services.split_for_content(image.sha256)


def test_the_same_photo_twice_is_refused_with_the_existing_image_named(dataset):
    label = Label.objects.create(dataset=dataset, name="coffee")
    first = services.dataset_image_create(dataset=dataset, data=jpeg(), name="mug.jpg", label=label, split="train")
    with pytest.raises(services.DuplicateImage) as error:
        services.dataset_image_create(dataset=dataset, data=jpeg(), name="again.jpg")
    assert error.value.existing == first
    assert error.value.messages == [
        f"“again.jpg” is already in the dataset as “mug.jpg” (image #{first.pk}, coffee, train)."
    ]
    other = Dataset.objects.create(name="Other", slug="other")
    assert services.dataset_image_create(dataset=other, data=jpeg(), name="mug.jpg").dataset == other


def test_a_label_from_another_dataset_is_refused(dataset):
    other = Dataset.objects.create(name="Other", slug="other")
    foreign = Label.objects.create(dataset=other, name="x")
    with pytest.raises(ValidationError, match="belongs to another dataset"):
        services.dataset_image_create(dataset=dataset, data=jpeg(), label=foreign)
    image = services.dataset_image_create(dataset=dataset, data=jpeg())
    with pytest.raises(ValidationError, match="not in the dataset"):
        services.dataset_images_relabel(images=DatasetImage.objects.filter(pk=image.pk), label=foreign)
    assert not DatasetImage.objects.filter(label=foreign).exists()


def test_label_names_are_trimmed_and_unique_ignoring_case(dataset):
    label = services.label_get_or_create(dataset=dataset, name="  Not   coffee ")
    assert label.name == "Not coffee"
    assert services.label_get_or_create(dataset=dataset, name="not COFFEE") == label
    with pytest.raises(ValidationError, match="cannot be empty"):
        services.label_get_or_create(dataset=dataset, name="   ")
    with pytest.raises(ValidationError, match="longer than 100"):
        services.label_get_or_create(dataset=dataset, name="x" * 101)


@pytest.mark.django_db(transaction=True)  # so that the INSERT can also run outside any transaction
@pytest.mark.parametrize("in_callers_transaction", [False, True])
def test_a_refused_row_takes_its_file_with_it(dataset, settings, in_callers_transaction):
    """A row the database refuses (here: the same photo twice, past the service's own check)
    leaves no file behind, and a caller's transaction stays usable."""
    data = next(variants(1, seed=3))
    first = services.dataset_image_create(dataset=dataset, data=data, name="first.png")
    files_before = sorted(p.name for p in settings.MEDIA_ROOT.rglob("*") if p.is_file())
    twin = DatasetImage(dataset=dataset, sha256=first.sha256, width=first.width, height=first.height)

    def save_twin():
        with pytest.raises(IntegrityError):
            services.file_and_row_save(file=twin.file, name="upload.png", data=data)

    if in_callers_transaction:
        with transaction.atomic():
            save_twin()
            assert dataset.images.count() == 1  # the transaction still answers
    else:
        save_twin()
    assert sorted(p.name for p in settings.MEDIA_ROOT.rglob("*") if p.is_file()) == files_before
    assert dataset.images.count() == 1
