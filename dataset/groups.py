"""Groups: a short tag per dataset image of what it shows (matcha, tea_teapot, latte_art…).

Evaluations report accuracy per group, so a weak spot (hard negatives, a kind of coffee) shows
instead of hiding in the overall figure. Groups come from a table given to an import (a TSV with
columns file/kind or path/group, paths as the import names its files) or from the admin.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from dataset.models import DatasetImage
from dataset.services import ImportReport

# A folder imported with this table at its root takes its groups without being told.
DEFAULT_GROUPS_FILE = "KINDS.tsv"
COLUMNS = (("file", "kind"), ("path", "group"))
MAX_LENGTH = DatasetImage._meta.get_field("group").max_length


def group_clean(value: str) -> str:
    """The tag as stored: trimmed, never longer than the field; ValidationError otherwise."""
    value = " ".join(value.split())
    if len(value) > MAX_LENGTH:
        raise ValidationError(f"The group “{value[:40]}…” is longer than {MAX_LENGTH} characters.")
    return value


def groups_file_read(*, path: Path) -> dict[str, str]:
    """{path of a photo: group} from a TSV whose header names file/kind or path/group."""
    try:
        with path.open(newline="", encoding="utf-8") as table:
            rows = csv.DictReader(table, delimiter="\t")
            columns = next((pair for pair in COLUMNS if set(pair) <= set(rows.fieldnames or ())), None)
            if columns is None:
                raise ValidationError(
                    f"{path.name} needs a header with the columns file and kind, or path and group (tab-separated)."
                )
            name, group = columns
            groups = {}
            for line, row in enumerate(rows, start=2):
                try:
                    if row[name] and row[group]:
                        groups[row[name].strip().replace("\\", "/")] = group_clean(row[group])
                except ValidationError as error:
                    raise ValidationError(f"{path.name}, line {line}: {error.messages[0]}") from None
            return groups
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ValidationError(f"{path} cannot be read as a table of groups ({error}).") from None


def groups_file_find(*, folder: Path, given: Path | None) -> Path | None:
    """The groups table an import of `folder` uses: the one given, else its DEFAULT_GROUPS_FILE."""
    if given is not None:
        return given
    default = folder / DEFAULT_GROUPS_FILE
    return default if folder.is_dir() and default.is_file() else None


@dataclass(frozen=True)
class GroupsApplied:
    new: int  # photos this import added, given their group
    filled: int  # photos already in the dataset without a group, given one now


def import_groups_apply(*, report: ImportReport, groups: dict[str, str]) -> GroupsApplied:
    """Give the photos of an import the groups the table names for them: those it added, and those
    it skipped as already imported while they lack a group (how an existing dataset gets its
    groups: import the same folder again). A group already set is kept."""
    new: dict[str, list[int]] = defaultdict(list)
    old: dict[str, list[int]] = defaultdict(list)
    for image in report.imported:
        if image.original_name in groups:
            new[groups[image.original_name]].append(image.pk)
    for name, existing in report.duplicates:
        if name in groups and not existing.group:
            old[groups[name]].append(existing.pk)
    counts = [
        sum(DatasetImage.objects.filter(pk__in=pks, group="").update(group=group) for group, pks in chosen.items())
        for chosen in (new, old)
    ]
    return GroupsApplied(*counts)


def dataset_images_set_group(*, images: QuerySet[DatasetImage], group: str) -> int:
    """Give the images `group` ("" removes it)."""
    return images.update(group=group_clean(group))
