"""Where imported files come from: a folder, a zip archive, or uploaded files.

Each source yields `ImportCandidate`s in a stable order. Label names come from the first folder
level (`coffee/x.jpg` → "coffee"). Zip members are never extracted to disk: they are read into
memory one at a time, after their names, types and sizes are checked, and only from an archive
whose entries are each other's strangers and whose total fits `MAX_IMPORT_ZIP_UNCOMPRESSED_BYTES`.
"""

from __future__ import annotations

import stat
import struct
import zipfile
from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path, PurePosixPath
from typing import IO, NamedTuple

from django.conf import settings
from django.core.exceptions import ValidationError

from dataset.services import ImportCandidate
from dataset.validation import human_size

SKIPPED_NAMES = ("__MACOSX", "Thumbs.db", "desktop.ini")
# The fixed part of a zip's local file header (APPNOTE 4.3.7): signature, version needed, flags,
# method, time, date, CRC-32, compressed size, size, name length, extra field length.
LOCAL_HEADER = struct.Struct("<4s5H3L2H")
LOCAL_HEADER_SIGNATURE = b"PK\x03\x04"
DATA_DESCRIPTOR_FLAG = 0x08  # sizes follow the data; the local header's are zero
UTF8_NAME_FLAG = 0x800
ZIP64_SIZE = 0xFFFFFFFF  # the real size is in the ZIP64 extra field
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
    return [ImportCandidate(name=file.name, label_name=None, read=file.read, size=file.size) for file in files]


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
    """Candidates for each member of a zip; unsafe members become candidates that refuse to read.

    The whole archive is refused first, with nothing read from its members, when it is not a zip,
    has too many files, expands past its total limit or has entries that overlap (`zip_check`).
    """
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError):
        raise ValidationError("The file is not a valid zip archive.") from None
    members = [info for info in archive.infolist() if not info.is_dir()]
    if len(members) > settings.MAX_IMPORT_ZIP_MEMBERS:
        raise ValidationError(
            f"The zip has {len(members):,} files; the limit is {settings.MAX_IMPORT_ZIP_MEMBERS:,}."
        )
    zip_check(archive=archive)
    members = [info for info in members if not is_skipped(PurePosixPath(info.filename.replace("\\", "/")).parts)]
    paths = {info.filename: PurePosixPath(info.filename.replace("\\", "/")).parts for info in members}
    reasons = {info.filename: unsafe_member_reason(info) for info in members}
    strip = common_top_folder(paths[name] for name, reason in reasons.items() if reason is None)
    budget = ExpansionBudget(limit=settings.MAX_IMPORT_ZIP_UNCOMPRESSED_BYTES)
    candidates = []
    for info in sorted(members, key=lambda member: member.filename):
        parts = paths[info.filename][strip:]
        label_name = parts[0] if len(parts) > 1 else None
        reason = reasons[info.filename]
        candidates.append(
            ImportCandidate(
                name=info.filename,
                label_name=None if reason else label_name,
                read=refusal(info.filename, reason) if reason else member_reader(archive, info, budget),
                size=info.file_size,
            )
        )
    return candidates


def zip_check(*, archive: zipfile.ZipFile) -> None:
    """Refuse an archive that expands past `MAX_IMPORT_ZIP_UNCOMPRESSED_BYTES` or whose entries
    share bytes, reading only its directory and local headers (milliseconds, whatever it holds).

    A member's own ratio limit cannot see entries that point at the same compressed data (a few
    hundred entries over one deflate stream expand to gigabytes). So the spans [local header, end of
    its data) of two entries must never intersect, and each local header must agree with the
    central directory (name, method, compressed size), which is all zipfile itself reads.
    """
    entries = archive.infolist()
    limit = settings.MAX_IMPORT_ZIP_UNCOMPRESSED_BYTES
    declared = sum(info.file_size for info in entries)
    if declared > limit:
        raise ValidationError(
            f"The zip expands to {human_size(declared)}; the limit is {human_size(limit)}. "
            "Split it into smaller archives."
        )
    headers = [(info, local_header(archive, info)) for info in entries]
    spans = sorted((info.header_offset, header.data_end, info.filename) for info, header in headers)
    for (_, previous_end, previous), (start, _, name) in pairwise(spans):
        if start < previous_end:
            raise ValidationError(
                f"The zip's entries “{previous}” and “{name}” overlap (they share compressed data, as a "
                "zip bomb does); nothing was imported."
            )
    if spans and spans[-1][1] > archive.start_dir:
        raise inconsistent(spans[-1][2], "runs into the archive's directory")
    for info, header in headers:
        if header.name != info.orig_filename:
            raise inconsistent(info.filename, f"has a local header that names “{header.name}”")
        if header.method != info.compress_type:
            raise inconsistent(info.filename, "has a local header with another compression method")
        if not header.flags & DATA_DESCRIPTOR_FLAG and header.compress_size not in (ZIP64_SIZE, info.compress_size):
            raise inconsistent(info.filename, "has a local header with another compressed size")


class LocalHeader(NamedTuple):
    name: str
    flags: int
    method: int
    compress_size: int
    data_end: int  # where the entry's compressed data ends, by the central directory's size


def local_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> LocalHeader:
    archive.fp.seek(info.header_offset)
    fixed = archive.fp.read(LOCAL_HEADER.size)
    if len(fixed) < LOCAL_HEADER.size or fixed[:4] != LOCAL_HEADER_SIGNATURE:
        raise inconsistent(info.filename, "points at no local header")
    _, _, flags, method, _, _, _, compress_size, _, name_length, extra_length = LOCAL_HEADER.unpack(fixed)
    encoding = "utf-8" if info.flag_bits & UTF8_NAME_FLAG else (archive.metadata_encoding or "cp437")
    name = archive.fp.read(name_length).decode(encoding, errors="replace")
    data_end = info.header_offset + LOCAL_HEADER.size + name_length + extra_length + info.compress_size
    return LocalHeader(name, flags, method, compress_size, data_end)


def inconsistent(name: str, problem: str) -> ValidationError:
    return ValidationError(f"The zip is inconsistent: the entry “{name}” {problem}; nothing was imported.")


class ExpansionBudget:
    """The bytes an archive's members may still produce when read: the total limit holds on what
    decompression yields, not only on what the headers declare."""

    def __init__(self, *, limit: int):
        self.limit = self.left = limit


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


def member_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: ExpansionBudget):
    def read() -> bytes:
        allowed = max(0, min(settings.MAX_UPLOAD_BYTES, budget.left))
        try:
            with archive.open(info) as member:
                data = member.read(allowed + 1)
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise ValidationError(f"“{info.filename}” is damaged in the zip ({error}).") from None
        budget.left -= len(data)
        if len(data) > settings.MAX_UPLOAD_BYTES:  # the header lied about the size
            raise ValidationError(f"“{info.filename}” is larger than {human_size(settings.MAX_UPLOAD_BYTES)}.")
        if budget.left < 0:
            raise ValidationError(
                f"“{info.filename}”: the zip expands past {human_size(budget.limit)}, its limit; skipped."
            )
        return data

    return read
