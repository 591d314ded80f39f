"""Importing photos from folders and zips: the archive checks, the service, the import_images command, and
the admin's imports on the queue."""

import io
import stat
import struct
import time
import zipfile
import zlib
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import File
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from django_q.conf import Conf

from dataset import imports, services, sources
from dataset.models import Dataset, DatasetImage, ImportRun, Label
from tests.photos import PHOTO_NAMES, encode, jpeg, photo

pytestmark = pytest.mark.django_db
DEMO_DATA = settings.DEMO_DATA_DIR
HOSTILE_LABEL = "<img src=x onerror=alert(1)>"


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def photo_folder(tmp_path):
    root = tmp_path / "photos"
    write(root / "coffee" / "mug.jpg", jpeg("coffee"))
    write(root / "coffee" / "nested" / "cup.png", encode(photo("coffee", size=(300, 200)), "PNG"))
    write(root / "not_coffee" / "cat.jpg", jpeg("chelsea"))
    write(root / "not_coffee" / "rocket.webp", encode(photo("rocket"), "WEBP"))
    write(root / "not_coffee" / "broken.jpg", jpeg("astronaut")[:3000])
    write(root / "not_coffee" / ".DS_Store", b"\0\0\0\1Bud1")
    write(root / "README.md", b"# my photos\n")
    return root


def run_import(path: Path, *args: str) -> str:
    out = io.StringIO()
    call_command("import_images", str(path), "--no-progress", *args, stdout=out)
    return out.getvalue()


def test_folder_import_creates_dataset_labels_and_images_once(photo_folder, media_root):
    output = run_import(photo_folder, "--dataset", "coffee")
    assert "coffee: 4 imported, 0 duplicates skipped, 1 rejected." in output
    assert "rejected not_coffee/broken.jpg: “not_coffee/broken.jpg” is damaged or incomplete" in output
    dataset = Dataset.objects.get(slug="coffee")
    labels = dict(dataset.images.values_list("original_name", "label__name"))
    assert labels == {
        "coffee/mug.jpg": "coffee",
        "coffee/nested/cup.png": "coffee",
        "not_coffee/cat.jpg": "not_coffee",
        "not_coffee/rocket.webp": "not_coffee",
    }
    for image in dataset.images.all():
        stored = Path(image.file.path)
        assert stored.is_relative_to(media_root) and stored.read_bytes()
        assert image.source == DatasetImage.Source.IMPORT
        assert image.split == services.split_for_content(image.sha256)

    assert "coffee: 0 imported, 4 duplicates skipped, 1 rejected." in run_import(photo_folder, "--dataset", "coffee")
    assert DatasetImage.objects.count() == 4
    assert len(list((media_root / "datasets").rglob("*.*"))) == 4


def test_a_folder_with_kinds_tsv_imports_groups_and_a_reimport_fills_them_in(photo_folder):
    run_import(photo_folder, "--dataset", "coffee")  # before the folder had a table: no groups
    assert set(DatasetImage.objects.values_list("group", flat=True)) == {""}
    DatasetImage.objects.filter(original_name="not_coffee/cat.jpg").update(group="cat_by_hand")
    write(photo_folder / "not_coffee" / "tea.jpg", jpeg("astronaut"))
    write(photo_folder / "KINDS.tsv", (
        b"file\tkind\n"
        b"coffee/mug.jpg\tcoffee_mug\n"
        b"not_coffee/cat.jpg\tcat\n"
        b"not_coffee/tea.jpg\ttea_cup\n"
        b"not_coffee/gone.jpg\tsoup\n"  # not in the folder: ignored
    ))
    output = run_import(photo_folder, "--dataset", "coffee")
    assert "coffee: 1 imported, 4 duplicates skipped, 1 rejected." in output
    assert "Groups from KINDS.tsv: 1 new photos given theirs; 1 photos imported before without a group got " \
           "theirs now" in output
    assert dict(DatasetImage.objects.values_list("original_name", "group")) == {
        "coffee/mug.jpg": "coffee_mug",
        "coffee/nested/cup.png": "",  # not in the table
        "not_coffee/cat.jpg": "cat_by_hand",  # a curator's group is kept
        "not_coffee/rocket.webp": "",
        "not_coffee/tea.jpg": "tea_cup",
    }
    assert "0 new photos given theirs; 0 photos imported before" in run_import(photo_folder, "--dataset", "coffee")


def test_a_groups_file_given_with_path_and_group_columns(photo_folder, tmp_path):
    table = write(tmp_path / "groups.tsv", b"path\tgroup\tnote\nnot_coffee/rocket.webp\t  space  \tbig\n")
    output = run_import(photo_folder, "--dataset", "coffee", "--groups", str(table))
    assert "Groups from groups.tsv: 1 new photos given theirs" in output
    assert list(DatasetImage.objects.exclude(group="").values_list("original_name", "group")) == [
        ("not_coffee/rocket.webp", "space")
    ]
    write(table, b"name\tlabel\nx.jpg\tcoffee\n")
    with pytest.raises(CommandError, match="groups.tsv needs a header with the columns file and kind"):
        run_import(photo_folder, "--dataset", "other", "--groups", str(table))
    write(table, b"file\tkind\nx.jpg\t" + b"x" * 51 + b"\n")
    with pytest.raises(CommandError, match="groups.tsv, line 2: The group .* is longer than 50 characters"):
        run_import(photo_folder, "--dataset", "other", "--groups", str(table))
    assert not Dataset.objects.filter(slug="other").exists()  # refused before anything is imported


def test_top_level_files_take_the_label_option(tmp_path):
    write(tmp_path / "a.jpg", jpeg("coffee"))
    run_import(tmp_path, "--dataset", "mugs", "--label", "coffee", "--split", "train")
    image = DatasetImage.objects.get()
    assert (image.label.name, image.split, image.dataset.slug) == ("coffee", "train", "mugs")


def test_label_folders_match_existing_labels_case_insensitively(tmp_path, dataset):
    Label.objects.create(dataset=dataset, name="Coffee")
    write(tmp_path / "coffee" / "a.jpg", jpeg("coffee"))
    write(tmp_path / "COFFEE" / "b.jpg", jpeg("chelsea"))
    run_import(tmp_path, "--dataset", "coffee")
    assert list(dataset.labels.values_list("name", flat=True)) == ["Coffee"]
    assert dataset.images.filter(label__name="Coffee").count() == 2


def test_missing_path_is_a_clear_command_error(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        run_import(tmp_path / "nowhere", "--dataset", "coffee")


def test_a_file_that_is_not_a_zip_is_a_clear_command_error(tmp_path):
    with pytest.raises(CommandError, match="not a valid zip archive"):
        run_import(write(tmp_path / "photos.zip", b"not a zip"), "--dataset", "coffee")
    assert not Dataset.objects.exists()


def make_zip(members: dict[str, bytes], *, symlinks: tuple[str, ...] = ()) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name in symlinks:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, data)
    return out.getvalue()


def test_zip_import_with_one_top_folder_and_hostile_members(tmp_path, dataset, media_root):
    data = make_zip(
        {
            "export/coffee/a.jpg": jpeg("coffee"),
            "export/not_coffee/b.jpg": jpeg("chelsea"),
            "export/../../evil.jpg": jpeg("rocket"),
            "/etc/cron.d/evil.jpg": jpeg("astronaut"),
            "export/coffee/link.jpg": b"/etc/passwd",
            "export/coffee/bomb.jpg": b"\0" * (5 * 1024 * 1024),
            "__MACOSX/export/coffee/._a.jpg": b"junk",
        },
        symlinks=("export/coffee/link.jpg",),
    )
    report = services.dataset_images_import(dataset=dataset, candidates=sources.zip_candidates(file=io.BytesIO(data)))
    assert sorted(image.label.name for image in report.imported) == ["coffee", "not_coffee"]
    reasons = dict(report.rejected)
    assert "points outside the archive" in reasons["export/../../evil.jpg"]
    assert "points outside the archive" in reasons["/etc/cron.d/evil.jpg"]
    assert "symbolic link" in reasons["export/coffee/link.jpg"]
    assert "zip bomb" in reasons["export/coffee/bomb.jpg"]
    assert len(reasons) == 4
    assert not list(tmp_path.rglob("evil.jpg")) and not Path("/etc/cron.d/evil.jpg").exists()
    assert sorted(p.suffix for p in (media_root / "datasets").rglob("*.*")) == [".jpg", ".jpg"]


def test_zip_of_a_single_label_folder_keeps_that_label(dataset):
    data = make_zip({"coffee/a.jpg": jpeg("coffee"), "coffee/b.jpg": jpeg("chelsea")})
    report = services.dataset_images_import(dataset=dataset, candidates=sources.zip_candidates(file=io.BytesIO(data)))
    assert [image.label.name for image in report.imported] == ["coffee", "coffee"]


def test_zip_member_count_limit(settings, dataset):
    settings.MAX_IMPORT_ZIP_MEMBERS = 3
    data = make_zip({f"coffee/{i}.jpg": b"x" for i in range(4)})
    with pytest.raises(ValidationError, match="The zip has 4 files; the limit is 3"):
        sources.zip_candidates(file=io.BytesIO(data))


def test_zip_member_whose_header_lies_about_its_size(settings, dataset):
    settings.MAX_UPLOAD_BYTES = 50_000
    big = jpeg("astronaut", quality=95)
    assert len(big) > 50_000
    info = zipfile.ZipInfo("coffee/big.jpg")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(info, big)
    [candidate] = sources.zip_candidates(file=io.BytesIO(out.getvalue()))
    with pytest.raises(ValidationError, match="KB; the limit is"):
        candidate.read()


def overlapping_zip(payload: bytes, names: list[str]) -> bytes:
    """One deflated file and a central directory whose every entry points at it: each entry is
    within the ratio limit, all together expand len(names) times (issue 19, item 8)."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    data = compressor.compress(payload) + compressor.flush()
    crc, first = zlib.crc32(payload), names[0].encode()
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(data), len(payload), len(first), 0)
    central = b"".join(
        struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(data), len(payload),
                    len(name.encode()), 0, 0, 0, 0, 0, 0) + name.encode()
        for name in names
    )
    directory_offset = len(local) + len(first) + len(data)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(names), len(names), len(central), directory_offset, 0)
    return local + first + data + central + end


def low_entropy(size: int) -> bytes:
    """Bytes that deflate about 4:1, well within the per-member ratio limit."""
    return np.random.default_rng(0).integers(0, 2, size, dtype=np.uint8).tobytes()


def test_zip_with_overlapping_entries_is_refused_at_once_and_nothing_imported(tmp_path, dataset, media_root):
    payload = low_entropy(10 * 1024 * 1024)
    data = overlapping_zip(payload, [f"coffee/{i:03}.jpg" for i in range(300)])
    assert len(data) < len(payload) / 4
    assert sum(info.file_size for info in zipfile.ZipFile(io.BytesIO(data)).infolist()) < (
        settings.MAX_IMPORT_ZIP_UNCOMPRESSED_BYTES
    )  # only the overlap gives it away
    path = write(tmp_path / "bomb.zip", data)
    started = time.monotonic()
    with pytest.raises(CommandError) as refusal:
        run_import(path, "--dataset", "coffee")
    assert time.monotonic() - started < 1
    assert str(refusal.value) == (
        "The zip's entries “coffee/000.jpg” and “coffee/001.jpg” overlap (they share compressed data, "
        "as a zip bomb does); nothing was imported."
    )
    assert not DatasetImage.objects.exists() and not Label.objects.exists()
    assert not media_root.exists() or not list(media_root.rglob("*.*"))


def test_the_zip_bomb_of_issue_19_is_refused_by_its_total_before_anything_is_read(dataset):
    data = overlapping_zip(low_entropy(20 * 1024 * 1024), [f"coffee/{i:03}.jpg" for i in range(300)])
    started = time.monotonic()
    with pytest.raises(ValidationError, match=r"^\['The zip expands to 5.9 GB; the limit is 4.0 GB\."):
        sources.zip_candidates(file=io.BytesIO(data))
    assert time.monotonic() - started < 1


def test_zip_whose_local_header_disagrees_with_its_directory_is_refused(dataset):
    data = make_zip({"coffee/a.jpg": jpeg("coffee"), "coffee/b.jpg": jpeg("chelsea")})
    data = data.replace(b"coffee/b.jpg", b"coffee/c.jpg", 1)  # the first occurrence is the local header
    with pytest.raises(ValidationError, match="inconsistent: the entry “coffee/b.jpg” has a local header that"):
        sources.zip_candidates(file=io.BytesIO(data))


def test_zip_past_the_total_uncompressed_limit_is_refused_before_reading(settings, dataset):
    members = {f"coffee/{name}.jpg": jpeg(name) for name in PHOTO_NAMES[:3]}
    settings.MAX_IMPORT_ZIP_UNCOMPRESSED_BYTES = sum(map(len, members.values())) - 1
    with pytest.raises(ValidationError, match=r"The zip expands to [\d.]+ KB; the limit is [\d.]+ KB\."):
        sources.zip_candidates(file=io.BytesIO(make_zip(members)))
    assert not DatasetImage.objects.exists()


def test_zip_whose_directory_understates_sizes_yields_no_more_than_it_declares(settings, dataset):
    """Sizes that lie low pass the check on declared sizes, and then decompression itself is held
    to them: each member stops at its declared size and fails its checksum."""
    members = {f"coffee/{name}.jpg": jpeg(name) for name in PHOTO_NAMES[:3]}
    data = bytearray(make_zip(members))
    directory = data.rindex(b"PK\x05\x06")
    start = struct.unpack_from("<L", data, directory + 16)[0]
    declared = 0
    for _ in members:  # each central entry's size field (offset 24) says 1 000 bytes
        struct.pack_into("<L", data, start + 24, 1000)
        declared += 1000
        start += 46 + struct.unpack_from("<H", data, start + 28)[0]
    settings.MAX_IMPORT_ZIP_UNCOMPRESSED_BYTES = declared
    candidates = sources.zip_candidates(file=io.BytesIO(bytes(data)))
    report = services.dataset_images_import(dataset=dataset, candidates=candidates)
    assert not report.imported and len(report.rejected) == 3
    assert all("damaged in the zip (Bad CRC-32" in reason for _, reason in report.rejected)


def test_zip_members_stop_reading_once_the_archive_total_is_spent(settings, dataset):
    """The total holds on the bytes reads produce: here the declared total is exactly the limit,
    so reading every member once spends it, and any byte more (a second read standing in for a
    header that lied) is refused."""
    members = {f"coffee/{name}.jpg": jpeg(name) for name in PHOTO_NAMES[:3]}
    settings.MAX_IMPORT_ZIP_UNCOMPRESSED_BYTES = sum(map(len, members.values()))
    candidates = sources.zip_candidates(file=io.BytesIO(make_zip(members)))
    assert {candidate.name: candidate.read() for candidate in candidates} == members
    with pytest.raises(ValidationError, match=r"“coffee/[a-z]+.jpg”: the zip expands past [\d.]+ KB, its limit; skipped"):
        candidates[0].read()


def test_label_with_html_is_stored_verbatim(tmp_path):
    write(tmp_path / HOSTILE_LABEL / "a.jpg", jpeg("coffee"))
    run_import(tmp_path, "--dataset", "coffee")
    assert Label.objects.get().name == HOSTILE_LABEL


def test_many_photos_import_with_distinct_hashes(dataset):
    candidates = [
        services.ImportCandidate(name=f"{name}.jpg", label_name=None, read=lambda name=name: jpeg(name))
        for name in PHOTO_NAMES
    ]
    report = services.dataset_images_import(dataset=dataset, candidates=candidates)
    assert len(report.imported) == len(PHOTO_NAMES)
    assert len({image.perceptual_hash for image in report.imported}) == len(PHOTO_NAMES)


@pytest.mark.shared_data
@pytest.mark.skipif(not DEMO_DATA.is_dir(), reason=f"the demo photos are not at {DEMO_DATA}")
def test_demo_photos_import_every_valid_photo_once():
    expected = {label: len(list((DEMO_DATA / label).glob("*.jpg"))) for label in ("coffee", "not_coffee")}
    output = run_import(DEMO_DATA, "--dataset", "coffee")
    total = sum(expected.values())
    assert f"coffee: {total} imported, 0 duplicates skipped, 0 rejected." in output
    counts = {label: DatasetImage.objects.filter(label__name=label).count() for label in expected}
    assert counts == expected
    assert f"coffee: 0 imported, {total} duplicates skipped, 0 rejected." in run_import(DEMO_DATA, "--dataset", "coffee")


# ----- large imports run on the queue, with their progress on the dataset page

DATASET_IMPORT = "admin:dataset_datasetimage_import"


@pytest.fixture
def queue_in_process(monkeypatch, settings):
    """django-q2 runs each task in this process as it is enqueued (its `sync` mode): the queue
    itself is not under test here, the worker's path through our task and service is."""
    monkeypatch.setattr(Conf, "SYNC", True)
    settings.IMPORT_IN_REQUEST_MAX_FILES = 2


def dataset_page(client, dataset) -> str:
    return client.get(reverse("admin:dataset_dataset_change", args=[dataset.pk])).content.decode()


def imports_json(client, dataset) -> list[dict]:
    return client.get(reverse("admin:dataset_dataset_imports", args=[dataset.pk])).json()["runs"]


def test_a_large_zip_imports_on_the_queue_with_its_progress_on_the_dataset_page(
    staff_client, dataset, media_root, queue_in_process, django_capture_on_commit_callbacks
):
    data = make_zip({
        "photos/coffee/a.jpg": jpeg("coffee"), "photos/coffee/b.jpg": jpeg("rocket"),
        "photos/not_coffee/c.jpg": jpeg("chelsea"), "photos/not_coffee/notes.jpg": b"not an image",
    })
    upload = SimpleUploadedFile("photos.zip", data, content_type="application/zip")
    with django_capture_on_commit_callbacks() as enqueue:
        response = staff_client.post(reverse(DATASET_IMPORT), {"dataset": dataset.pk, "archive": upload,
                                                               "split": "auto"})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:dataset_dataset_change", args=[dataset.pk])
    run = ImportRun.objects.get()
    assert (run.status, run.total, run.archive_name) == ("queued", 4, "photos.zip")
    assert Path(run.archive.path).is_relative_to(media_root / "imports") and Path(run.archive.path).is_file()
    assert not DatasetImage.objects.exists()
    page = dataset_page(staff_client, dataset)
    assert "“photos.zip”: queued, 4 files" in page and '<progress max="4" value="0">' in page
    assert "dataset/import_progress.js" in page
    assert imports_json(staff_client, dataset) == [{
        "id": run.pk, "status": "queued", "active": True, "done": 0, "total": 4,
        "text": "“photos.zip”: queued, 4 files; it starts when the training worker is free.",
    }]

    [callback() for callback in enqueue]  # commit: the task goes on the queue, and runs
    run.refresh_from_db()
    assert (run.status, run.done, run.imported, run.duplicates, run.rejected) == ("done", 4, 3, 0, 1)
    assert sorted(dataset.images.values_list("label__name", flat=True)) == ["coffee", "coffee", "not_coffee"]
    assert not run.archive and not list((media_root / "imports").iterdir())
    page = dataset_page(staff_client, dataset)
    assert "“photos.zip”: done, 3 imported, 0 duplicates skipped, 1 rejected." in page and "<progress" not in page
    assert "“photos/not_coffee/notes.jpg” is not an image" in page
    assert imports_json(staff_client, dataset)[0]["active"] is False


def test_a_running_import_shows_how_far_it_got(staff_client, dataset, monkeypatch):
    run = imports.import_run_create(
        dataset=dataset, archive=File(io.BytesIO(make_zip({"a.jpg": jpeg()})), name="x.zip"), total=4,
        split="auto", source=DatasetImage.Source.UPLOAD,
    )
    ImportRun.objects.filter(pk=run.pk).update(status="running")
    monkeypatch.setattr(imports, "PROGRESS_INTERVAL_SECONDS", 0)
    imports.progress_recorder(run_id=run.pk)(services.ImportReport(rejected=[("a", "no"), ("b", "no")]))
    page = dataset_page(staff_client, dataset)
    assert "“x.zip”: importing, 2 of 4 files (0 imported, 0 duplicates skipped, 2 rejected)." in page
    assert '<progress max="4" value="2">' in page
    assert imports_json(staff_client, dataset)[0] | {"text": ""} == {
        "id": run.pk, "status": "running", "active": True, "done": 2, "total": 4, "text": "",
    }


def test_many_uploaded_photos_import_on_the_queue_under_their_own_names(
    staff_client, dataset, media_root, queue_in_process, django_capture_on_commit_callbacks
):
    files = [SimpleUploadedFile(f"{name}.jpg", jpeg(name), "image/jpeg") for name in ("coffee", "chelsea")]
    files.append(SimpleUploadedFile("coffee.jpg", jpeg("rocket"), "image/jpeg"))  # another photo, same name
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(reverse(DATASET_IMPORT), {"dataset": dataset.pk, "files": files, "label": "mugs",
                                                    "split": "val"})
    run = ImportRun.objects.get()
    assert (run.status, run.archive_name, run.imported) == ("done", "3 uploaded photos", 3)
    images = dataset.images.order_by("original_name")
    assert list(images.values_list("original_name", "label__name", "split", "source")) == [
        ("chelsea.jpg", "mugs", "val", "upload"), ("coffee (2).jpg", "mugs", "val", "upload"),
        ("coffee.jpg", "mugs", "val", "upload"),
    ]
    assert not list((media_root / "imports").iterdir())


def test_the_overlapping_zip_is_refused_in_the_request_and_queues_nothing(
    staff_client, dataset, media_root, queue_in_process, django_capture_on_commit_callbacks
):
    data = overlapping_zip(low_entropy(1024 * 1024), [f"coffee/{i:03}.jpg" for i in range(300)])
    upload = SimpleUploadedFile("bomb.zip", data, content_type="application/zip")
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True) as enqueued:
        response = staff_client.post(reverse(DATASET_IMPORT), {"dataset": dataset.pk, "archive": upload,
                                                               "label": "new", "split": "auto"})
    assert time.monotonic() - started < 1
    assert response.status_code == 200
    assert "entries “coffee/000.jpg” and “coffee/001.jpg” overlap" in response.content.decode()
    assert not enqueued and not ImportRun.objects.exists() and not Label.objects.exists()
    assert not DatasetImage.objects.exists() and not list(media_root.rglob("*.*"))


def test_a_run_whose_archive_cannot_be_read_fails_with_a_sentence(dataset, media_root, queue_in_process,
                                                                   django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = imports.import_run_create(
            dataset=dataset, archive=File(io.BytesIO(b"not a zip"), name="x.zip"), total=3, split="auto",
            source=DatasetImage.Source.UPLOAD,
        )
    run.refresh_from_db()
    assert (run.status, run.error) == ("failed", "The file is not a valid zip archive.")
    assert not list((media_root / "imports").iterdir())


def test_a_run_left_running_by_a_stopped_worker_is_failed_and_its_archive_deleted(dataset, media_root):
    run = imports.import_run_create(
        dataset=dataset, archive=File(io.BytesIO(make_zip({"a.jpg": jpeg()})), name="x.zip"), total=1,
        split="auto", source=DatasetImage.Source.UPLOAD,
    )
    ImportRun.objects.filter(pk=run.pk).update(status="running", started_at=timezone.now() - timedelta(hours=2))
    assert imports.import_runs_fail_stale(older_than_seconds=3600) == 1
    run.refresh_from_db()
    assert run.status == "failed" and "its worker was stopped" in run.error
    assert not list((media_root / "imports").iterdir())
