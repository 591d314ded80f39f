"""Where imported files come from: a folder, a zip archive, or uploaded files.

Each source yields `ImportCandidate`s in a stable order. Label names come from the first folder
level (`coffee/x.jpg` → "coffee"). Zip members are never extracted to disk: they are read into
memory one at a time, after their names, types and sizes are checked.
"""

from __future__ import annotations

import stat
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import IO

from django.conf import settings
from django.core.exceptions import ValidationError

from dataset.services import ImportCandidate, human_size

SKIPPED_NAMES = ("__MACOSX", "Thumbs.db", "desktop.ini")
# Notes that often sit beside photos in a dataset folder (a README, a labels sheet).
DOCUMENT_SUFFIXES = (".txt", ".md", ".rst", ".csv", ".tsv", ".json", ".yaml", ".yml", ".xml", ".html", ".pdf")


def is_skipped(parts: Iterable[str]) -> bool:
    """Hidden files, what operating systems add to archives, and notes are noise, not rejects."""
    parts = list(parts)
    if not parts:  # a member named "." or "/": nothing to import
        return True
    return parts[-1].lower().endswith(DOCUMENT_SUFFIXES) or any(
        (part.startswith(".") and part != "..") or part in SKIPPED_NAMES for part in parts
    )


def folder_candidates(*, path: Path) -> list[ImportCandidate]:
    if not path.is_dir():
        raise ValidationError(f"{path} is not a folder.")
    candidates = []
    for file in sorted(path.rglob("*")):
        relative = file.relative_to(path)
        if not file.is_file() or is_skipped(relative.parts):
            continue
        label_name = relative.parts[0] if len(relative.parts) > 1 else None
        candidates.append(ImportCandidate(name=str(relative), label_name=label_name, read=file.read_bytes))
    return candidates


def upload_candidates(*, files: Iterable) -> list[ImportCandidate]:
    """Uploaded files (Django `UploadedFile`s); they carry no folder, so no label of their own."""
    return [ImportCandidate(name=file.name, label_name=None, read=file.read) for file in files]


def unsafe_member_reason(info: zipfile.ZipInfo) -> str | None:
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in parts:
        return "its path points outside the archive; skipped"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "it is a symbolic link; skipped"
    if info.flag_bits & 0x1:
        return "it is encrypted; skipped"
    if info.file_size > settings.MAX_UPLOAD_BYTES:
        return f"it is {human_size(info.file_size)}; the limit is {human_size(settings.MAX_UPLOAD_BYTES)}"
    if info.compress_size and info.file_size / info.compress_size > settings.MAX_IMPORT_ZIP_RATIO:
        return (
            f"it expands {info.file_size // info.compress_size}:1, past the "
            f"{settings.MAX_IMPORT_ZIP_RATIO}:1 a photo can reach (a zip bomb?)"
        )
    return None


def zip_candidates(*, file: IO[bytes] | Path) -> list[ImportCandidate]:
    """Candidates for each member of a zip; unsafe members become candidates that refuse to read."""
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError):
        raise ValidationError("The file is not a valid zip archive.") from None
    members = [info for info in archive.infolist() if not info.is_dir()]
    if len(members) > settings.MAX_IMPORT_ZIP_MEMBERS:
        raise ValidationError(
            f"The zip has {len(members):,} files; the limit is {settings.MAX_IMPORT_ZIP_MEMBERS:,}."
        )
    members = [info for info in members if not is_skipped(PurePosixPath(info.filename.replace("\\", "/")).parts)]
    paths = {info.filename: PurePosixPath(info.filename.replace("\\", "/")).parts for info in members}
    reasons = {info.filename: unsafe_member_reason(info) for info in members}
    strip = common_top_folder(paths[name] for name, reason in reasons.items() if reason is None)
    candidates = []
    for info in sorted(members, key=lambda member: member.filename):
        parts = paths[info.filename][strip:]
        label_name = parts[0] if len(parts) > 1 else None
        reason = reasons[info.filename]
        candidates.append(
            ImportCandidate(
                name=info.filename,
                label_name=None if reason else label_name,
                read=refusal(info.filename, reason) if reason else member_reader(archive, info),
            )
        )
    return candidates


def common_top_folder(all_parts: Iterable[tuple[str, ...]]) -> int:
    """1 when every file sits in one top folder that holds label folders (`photos/coffee/x.jpg`).

    A zip of a single label folder (`coffee/x.jpg`) keeps its folder as the label.
    """
    all_parts = list(all_parts)
    tops = {parts[0] for parts in all_parts if len(parts) > 1}
    everything_in_one_folder = len(tops) == 1 and all(len(parts) > 1 for parts in all_parts)
    if everything_in_one_folder and any(len(parts) > 2 for parts in all_parts):
        return 1
    return 0


def refusal(name: str, reason: str):
    def read() -> bytes:
        raise ValidationError(f"“{name}”: {reason}.")

    return read


def member_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo):
    def read() -> bytes:
        limit = settings.MAX_UPLOAD_BYTES
        try:
            with archive.open(info) as member:
                data = member.read(limit + 1)
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise ValidationError(f"“{info.filename}” is damaged in the zip ({error}).") from None
        if len(data) > limit:  # the header lied about the size
            raise ValidationError(f"“{info.filename}” is larger than {human_size(limit)}.")
        return data

    return read
