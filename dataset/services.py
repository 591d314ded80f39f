"""Everything that changes the dataset: validating, importing, labelling, splitting, excluding.

Every way an image enters (admin upload, zip, the import command, later prediction feedback)
goes through `image_validate` and `dataset_image_create`, so one set of rules holds everywhere.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from dataset import selectors
from dataset.imaging import content_sha256
from dataset.models import Dataset, DatasetImage, Label
from dataset.validation import image_validate

AUTO_SPLIT = "auto"


AUTO_SPLIT_SHARES = ((DatasetImage.Split.TRAIN, 0.70), (DatasetImage.Split.VAL, 0.15), (DatasetImage.Split.TEST, 0.15))


class DuplicateImage(ValidationError):
    """The same bytes are already in the dataset; `existing` names the image that has them."""

    def __init__(self, *, existing: DatasetImage, name: str = ""):
        label = existing.label.name if existing.label else "unlabelled"
        what = f"“{name}”" if name else "This photo"
        super().__init__(
            f"{what} is already in the dataset as “{existing}” (image #{existing.pk}, {label}, "
            f"{existing.get_split_display().lower()}).",
            code="duplicate",
        )
        self.existing = existing


def split_for_content(sha256: str) -> str:
    """A stable 70/15/15 split drawn from the photo's own hash.

    The same photo always lands in the same split whatever the import order, and adding photos
    never moves the ones already there, so test metrics of two versions stay comparable.
    """
    position = int(sha256[:8], 16) / 0x1_0000_0000
    cumulative = 0.0
    for split, share in AUTO_SPLIT_SHARES:
        cumulative += share
        if position < cumulative:
            return split
    return DatasetImage.Split.TEST


def label_get_or_create(*, dataset: Dataset, name: str) -> Label:
    name = " ".join(name.split())
    if not name:
        raise ValidationError("A label name cannot be empty.", code="label_empty")
    if len(name) > Label._meta.get_field("name").max_length:
        raise ValidationError(f"The label name “{name[:40]}…” is longer than 100 characters.", code="label_long")
    label = Label.objects.filter(dataset=dataset, name__iexact=name).first()
    if label is None:
        try:
            with transaction.atomic():
                label = Label.objects.create(dataset=dataset, name=name)
        except IntegrityError:  # created meanwhile by another import
            label = Label.objects.get(dataset=dataset, name__iexact=name)
    return label


def dataset_get_or_create(*, slug: str, name: str = "") -> Dataset:
    dataset, _ = Dataset.objects.get_or_create(slug=slug, defaults={"name": name or slug.replace("-", " ").title()})
    return dataset


def dataset_image_create(
    *,
    dataset: Dataset,
    data: bytes,
    name: str = "",
    label: Label | None = None,
    split: str = AUTO_SPLIT,
    source: str = DatasetImage.Source.UPLOAD,
) -> DatasetImage:
    """Validate and store one image; the file and its row are written together or not at all."""
    if label is not None and label.dataset_id != dataset.pk:
        raise ValidationError(f"The label “{label}” belongs to another dataset.", code="label_dataset")
    sha256 = content_sha256(data)
    existing = selectors.dataset_image_by_sha256(dataset=dataset, sha256=sha256)
    if existing is not None:
        raise DuplicateImage(existing=existing, name=name)
    valid = image_validate(data=data, name=name)
    image = DatasetImage(
        dataset=dataset,
        label=label,
        original_name=name.replace("\x00", "")[-255:],  # PostgreSQL refuses NUL in text
        sha256=sha256,
        perceptual_hash=valid.perceptual_hash,
        image_format=valid.image_format,
        width=valid.width,
        height=valid.height,
        split=split_for_content(sha256) if split == AUTO_SPLIT else split,
        source=source,
    )
    try:
        file_and_row_save(file=image.file, name=f"upload.{valid.extension}", data=valid.data)
    except IntegrityError:
        existing = selectors.dataset_image_by_sha256(dataset=dataset, sha256=sha256)
        if existing is None:
            raise
        raise DuplicateImage(existing=existing, name=name) from None
    return image


def file_and_row_save(*, file, name: str, data: bytes | File) -> None:
    """Write the file, then insert the row of the model instance it belongs to; if the row fails,
    the file goes too (never one alone). `data` is bytes, or a File for what should not sit in
    memory (a temporary upload is moved, not copied).

    The INSERT runs in a savepoint inside a caller's transaction, so a refused row leaves that
    transaction usable.
    """
    file.save(name, data if isinstance(data, File) else ContentFile(data), save=False)
    try:
        with transaction.atomic():
            file.instance.save(force_insert=True)
    except BaseException:
        file.delete(save=False)
        raise


def rows_delete_with_files(*, queryset, field: str) -> int:
    """Delete rows, then their files once the deletion is committed (never a row without a file)."""
    names = list(queryset.values_list(field, flat=True))
    count, _ = queryset.delete()
    storage = queryset.model._meta.get_field(field).storage
    transaction.on_commit(lambda: [storage.delete(name) for name in names if name])
    return count


@dataclass(frozen=True)
class ImportCandidate:
    """One file offered for import: its name, the label its folder names, how to read it, and
    the size its source declares (what decides whether an import fits in a request)."""

    name: str
    label_name: str | None
    read: Callable[[], bytes]
    size: int = 0


@dataclass
class ImportReport:
    imported: list[DatasetImage] = field(default_factory=list)
    duplicates: list[tuple[str, DatasetImage]] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def merge(self, other: ImportReport) -> ImportReport:
        self.imported += other.imported
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        return self

    def counts(self) -> dict[str, int]:
        done = len(self.imported) + len(self.duplicates) + len(self.rejected)
        return {"done": done, "imported": len(self.imported), "duplicates": len(self.duplicates),
                "rejected": len(self.rejected)}

    def summary(self) -> str:
        return (
            f"{len(self.imported)} imported, {len(self.duplicates)} duplicates skipped, "
            f"{len(self.rejected)} rejected."
        )


def dataset_images_import(
    *,
    dataset: Dataset,
    candidates: Iterable[ImportCandidate],
    default_label: Label | None = None,
    split: str = AUTO_SPLIT,
    source: str = DatasetImage.Source.IMPORT,
    on_progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Import many files; each is its own transaction, so an interruption keeps what was done
    and a second run imports only what is missing. `on_progress` sees the report after each file."""
    report = ImportReport()
    labels: dict[str, Label] = {}
    for candidate in candidates:
        try:
            label = default_label
            if candidate.label_name:
                key = candidate.label_name.casefold()
                if key not in labels:
                    labels[key] = label_get_or_create(dataset=dataset, name=candidate.label_name)
                label = labels[key]
            image = dataset_image_create(
                dataset=dataset, data=candidate.read(), name=candidate.name, label=label, split=split, source=source
            )
        except DuplicateImage as duplicate:
            report.duplicates.append((candidate.name, duplicate.existing))
        except ValidationError as error:
            report.rejected.append((candidate.name, " ".join(error.messages)))
        else:
            report.imported.append(image)
        if on_progress is not None:
            on_progress(report)
    return report


def dataset_images_relabel(*, images: QuerySet[DatasetImage], label: Label | None) -> int:
    """Give the images `label` (None: unlabelled). All of them must be in the label's dataset."""
    if label is not None and images.exclude(dataset=label.dataset_id).exists():
        raise ValidationError(
            f"Some selected images are not in the dataset “{label.dataset}” of the label “{label}”.",
            code="label_dataset",
        )
    return images.update(label=label)


def dataset_images_set_split(*, images: QuerySet[DatasetImage], split: str) -> int:
    if split not in DatasetImage.Split.values:
        raise ValidationError(f"“{split}” is not a split; choose one of {', '.join(DatasetImage.Split.values)}.")
    return images.update(split=split)


def dataset_images_exclude(*, images: QuerySet[DatasetImage], reason: str = "") -> int:
    return images.update(excluded=True, exclusion_reason=reason.strip()[:255])


def dataset_images_include(*, images: QuerySet[DatasetImage]) -> int:
    return images.update(excluded=False, exclusion_reason="")


def dataset_images_resplit(
    *,
    images: QuerySet[DatasetImage],
    train: float = 0.70,
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
) -> dict[str, int]:
    """Stratified, seeded re-split: each label (per dataset) gets the shares, up to rounding.

    Near-duplicates move together, so the same photo never sits in two splits. The result depends
    only on the images' content and the seed, not on ids or the order they were imported in.
    """
    shares = {DatasetImage.Split.TRAIN: train, DatasetImage.Split.VAL: val, DatasetImage.Split.TEST: test}
    if any(share < 0 for share in shares.values()) or abs(sum(shares.values()) - 1) > 1e-6:
        raise ValidationError("The train, validation and test shares must be non-negative and add up to 100 %.")
    rows = list(images.values_list("pk", "dataset_id", "label_id", "sha256", "perceptual_hash"))
    groups = selectors.near_duplicate_groups(rows=[(pk, dataset_id, phash) for pk, dataset_id, _, _, phash in rows])
    sha_of = {pk: sha for pk, _, _, sha, _ in rows}
    strata: dict[tuple[int, int | None], list[list[int]]] = defaultdict(list)
    label_of = {pk: (dataset_id, label_id) for pk, dataset_id, label_id, _, _ in rows}
    for group in groups:
        # A group follows its first member's label; mixed labels in a group are a curation issue.
        members = sorted(group, key=sha_of.__getitem__)
        strata[label_of[members[0]]].append(members)
    assignment: dict[str, list[int]] = defaultdict(list)
    for key in sorted(strata, key=lambda k: (k[0], k[1] or 0)):
        units = sorted(strata[key], key=lambda members: sha_of[members[0]])
        random.Random(f"{seed}:{key[0]}:{key[1]}").shuffle(units)
        total = sum(len(unit) for unit in units)
        targets = {split: round(total * share) for split, share in shares.items()}
        counts = dict.fromkeys(shares, 0)
        for unit in units:
            split = next(
                (s for s in (DatasetImage.Split.TRAIN, DatasetImage.Split.VAL) if counts[s] < targets[s]),
                DatasetImage.Split.TEST,
            )
            counts[split] += len(unit)
            assignment[split].extend(unit)
    with transaction.atomic():
        for split, pks in assignment.items():
            DatasetImage.objects.filter(pk__in=pks).update(split=split)
    return {split: len(assignment.get(split, [])) for split in shares}


def dataset_images_delete(*, images: QuerySet[DatasetImage]) -> int:
    return rows_delete_with_files(queryset=images, field="file")
