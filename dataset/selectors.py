"""Read helpers for the dataset: lookups, counts and near-duplicate detection."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np
from django.db.models import Count, QuerySet

from dataset.models import Dataset, DatasetImage

# dHash Hamming distance at or below which two photos count as the same picture; the data
# preparation of the demo set used the same test (see shared/data/coffee-or-not/SOURCES.md).
NEAR_DUPLICATE_MAX_DISTANCE = 5
UNLABELLED = "(unlabelled)"


def file_read(*, file) -> bytes:
    """All bytes of a stored file (a FieldFile), closed again whatever the storage."""
    with file.open("rb") as handle:
        return handle.read()


def dataset_image_by_sha256(*, dataset: Dataset, sha256: str) -> DatasetImage | None:
    return DatasetImage.objects.filter(dataset=dataset, sha256=sha256).select_related("label").first()


def dataset_counts(*, dataset: Dataset) -> dict[str, dict[str, int]]:
    """{label name or UNLABELLED: {split: count, "excluded": count, "total": count}}."""
    table: dict[str, dict[str, int]] = {
        label.name: defaultdict(int) for label in dataset.labels.all()
    }
    rows = (
        dataset.images.values("label__name", "split", "excluded")
        .annotate(count=Count("id"))
        .order_by()
    )
    for row in rows:
        counts = table.setdefault(row["label__name"] or UNLABELLED, defaultdict(int))
        if row["excluded"]:
            counts["excluded"] += row["count"]
        else:
            counts[row["split"]] += row["count"]
        counts["total"] += row["count"]
    return {name: dict(counts) for name, counts in table.items()}


def near_duplicate_pairs(
    *, rows: Iterable[tuple[int, int, str]], max_distance: int = NEAR_DUPLICATE_MAX_DISTANCE
) -> list[tuple[int, int, int]]:
    """Pairs (pk_a, pk_b, distance), pk_a < pk_b, of photos within `max_distance` in one dataset.

    `rows` are (pk, dataset_id, perceptual_hash). Vectorised with NumPy: one pass per image.
    """
    by_dataset: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for pk, dataset_id, perceptual_hash in rows:
        by_dataset[dataset_id].append((pk, perceptual_hash))
    pairs = []
    for members in by_dataset.values():
        pks = np.array([pk for pk, _ in members])
        hashes = np.array([int(h, 16) for _, h in members], dtype=np.uint64)
        for index in range(len(members)):
            distances = np.bitwise_count(hashes[index + 1 :] ^ hashes[index])
            for offset in np.flatnonzero(distances <= max_distance):
                pairs.append((int(pks[index]), int(pks[index + 1 + offset]), int(distances[offset])))
    return [(min(a, b), max(a, b), d) for a, b, d in pairs]


def near_duplicate_groups(*, rows: Iterable[tuple[int, int, str]]) -> list[set[int]]:
    """Every pk in exactly one group; near-duplicates (transitively) share a group."""
    rows = list(rows)
    parent = {pk: pk for pk, _, _ in rows}

    def root(pk: int) -> int:
        while parent[pk] != pk:
            parent[pk] = parent[parent[pk]]
            pk = parent[pk]
        return pk

    for a, b, _ in near_duplicate_pairs(rows=rows):
        parent[root(a)] = root(b)
    groups: dict[int, set[int]] = defaultdict(set)
    for pk in parent:
        groups[root(pk)].add(pk)
    return list(groups.values())


def near_duplicate_ids(*, images: QuerySet[DatasetImage], across_splits: bool = False) -> set[int]:
    """Ids of images with a near-duplicate in their dataset (only in another split, if asked)."""
    rows = list(images.model.objects.filter(dataset__in=images.values("dataset")).values_list(
        "pk", "dataset_id", "perceptual_hash", "split"
    ))
    split_of = {pk: split for pk, _, _, split in rows}
    flagged = set()
    for a, b, _ in near_duplicate_pairs(rows=[(pk, ds, h) for pk, ds, h, _ in rows]):
        if not across_splits or split_of[a] != split_of[b]:
            flagged.update((a, b))
    return flagged


def near_duplicates_of(*, image: DatasetImage) -> list[tuple[DatasetImage, int]]:
    """Other images of the dataset that look like `image`, closest first, with their distance."""
    rows = list(image.dataset.images.values_list("pk", "perceptual_hash"))
    hashes = np.array([int(h, 16) for _, h in rows], dtype=np.uint64)
    distances = np.bitwise_count(hashes ^ np.uint64(int(image.perceptual_hash, 16)))
    close = {rows[i][0]: int(distances[i]) for i in np.flatnonzero(distances <= NEAR_DUPLICATE_MAX_DISTANCE)}
    close.pop(image.pk, None)
    others = DatasetImage.objects.filter(pk__in=close).select_related("label")
    return sorted(((other, close[other.pk]) for other in others), key=lambda pair: (pair[1], pair[0].pk))
