"""Imports from the admin: in the request when small, on the queue otherwise.

An import fits in a request when it is one file, or at most IMPORT_IN_REQUEST_MAX_FILES files of
at most MAX_UPLOAD_BYTES in all (a handful of phone photos): a few seconds at worst. Anything larger is stored under MEDIA_ROOT/imports/, recorded as an `ImportRun` and
imported by a worker of the training cluster (long work there never delays a prediction), so no
request outlives a proxy's read timeout. The `import_images` command runs in its terminal with
the same sources and `dataset_images_import`.
"""

from __future__ import annotations

import logging
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import PurePosixPath

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import File
from django.db import transaction
from django.utils import timezone

from dataset import services, sources
from dataset.models import Dataset, DatasetImage, ImportRun

logger = logging.getLogger(__name__)
IMPORT_TASK = "dataset.tasks.import_run"
PROGRESS_INTERVAL_SECONDS = 0.5


def dataset_import_start(
    *,
    dataset: Dataset,
    archive: File | None = None,
    files: Iterable[File] = (),
    label_name: str = "",
    split: str = services.AUTO_SPLIT,
    source: str = DatasetImage.Source.UPLOAD,
    user=None,
) -> services.ImportReport | ImportRun:
    """Import a zip or uploaded photos: at once when they fit in a request (the report comes
    back), else on the queue (its run comes back). A zip is checked whole first either way, so
    a refused archive is refused at once and leaves nothing behind, not even a new label."""
    files = list(files)
    candidates = sources.zip_candidates(file=archive) if archive else sources.upload_candidates(files=files)
    label = services.label_get_or_create(dataset=dataset, name=label_name) if label_name else None
    fits = len(candidates) <= 1 or (
        len(candidates) <= settings.IMPORT_IN_REQUEST_MAX_FILES
        and sum(candidate.size for candidate in candidates) <= settings.MAX_UPLOAD_BYTES
    )
    if fits:
        return services.dataset_images_import(
            dataset=dataset, candidates=candidates, default_label=label, split=split, source=source
        )
    run = {"dataset": dataset, "total": len(candidates), "label": label, "split": split, "source": source, "user": user}
    if archive:
        return import_run_create(archive=archive, **run)
    with tempfile.TemporaryFile() as packed:
        photos_zip_write(files=files, into=packed)
        return import_run_create(archive=File(packed, name=f"{len(files)} uploaded photos"), **run)


def photos_zip_write(*, files: list[File], into) -> None:
    """Write uploaded photos as one stored (uncompressed) zip, so that a queued import has one
    archive to wait in; a name given twice gets a number, as a file manager does."""
    seen: Counter[str] = Counter()
    with zipfile.ZipFile(into, "w", zipfile.ZIP_STORED) as archive:
        for file in files:
            seen[file.name] += 1
            path = PurePosixPath(file.name)
            info = zipfile.ZipInfo(file.name if seen[file.name] == 1 else f"{path.stem} ({seen[file.name]}){path.suffix}")
            info.file_size = file.size  # zipfile then knows whether the member needs ZIP64
            with archive.open(info, "w") as member:
                for chunk in file.chunks():
                    member.write(chunk)


def import_run_create(
    *, dataset: Dataset, archive: File, total: int, label=None, split: str, source: str, user=None
) -> ImportRun:
    """Store the archive and record its run; the run is queued once its row is committed."""
    run = ImportRun(
        dataset=dataset,
        archive_name=PurePosixPath(archive.name or "archive.zip").name[-255:],
        label=label,
        split=split,
        source=source,
        total=total,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    services.file_and_row_save(file=run.archive, name="archive.zip", data=archive)
    transaction.on_commit(lambda: import_run_enqueue(run_id=run.pk))
    return run


def import_run_enqueue(*, run_id: int) -> None:
    from django_q.tasks import async_task

    async_task(IMPORT_TASK, run_id, cluster=settings.TRAINING_CLUSTER, task_name=f"import-{run_id}")


def import_run_execute(*, run: ImportRun) -> ImportRun:
    """Import a queued run's archive in this process, then delete the archive; the outcome is
    recorded on the run, never raised. A run that is not queued any more (done, failed, or taken
    by another worker) is left alone, so a task delivered twice imports once."""
    claimed = ImportRun.objects.filter(pk=run.pk, status=ImportRun.Status.QUEUED).update(
        status=ImportRun.Status.RUNNING, started_at=timezone.now()
    )
    run.refresh_from_db()
    if not claimed:
        return run
    try:
        with run.archive.open("rb") as archive:
            candidates = sources.zip_candidates(file=archive)
            ImportRun.objects.filter(pk=run.pk).update(total=len(candidates))
            report = services.dataset_images_import(
                dataset=run.dataset, candidates=candidates, default_label=run.label, split=run.split,
                source=run.source, on_progress=progress_recorder(run_id=run.pk),
            )
    except ValidationError as error:
        outcome = {"status": ImportRun.Status.FAILED, "error": " ".join(error.messages)}
    except Exception as error:  # whatever stops it, the run must say so, not stay "running"
        logger.exception("Import run %s stopped", run.pk)
        outcome = {"status": ImportRun.Status.FAILED, "error": f"The import stopped ({error}). {KEPT}"}
    else:
        outcome = {
            "status": ImportRun.Status.DONE, **report.counts(),
            "rejections": [reason for _, reason in report.rejected],
        }
    import_run_finish(run=run, **outcome)
    run.refresh_from_db()
    return run


KEPT = "The photos imported so far are kept; importing the same zip again adds only the rest."


def progress_recorder(*, run_id: int) -> Callable[[services.ImportReport], None]:
    """A progress callback that writes the counts at most every PROGRESS_INTERVAL_SECONDS."""
    last = time.monotonic()

    def record(report: services.ImportReport) -> None:
        nonlocal last
        if time.monotonic() - last >= PROGRESS_INTERVAL_SECONDS:
            ImportRun.objects.filter(pk=run_id).update(**report.counts())
            last = time.monotonic()

    return record


def import_run_finish(*, run: ImportRun, status: str, **outcome) -> None:
    """Record how the run ended and delete its archive: the photos are in the dataset now, or
    the run failed and the curator uploads the zip again."""
    ImportRun.objects.filter(pk=run.pk).update(status=status, finished_at=timezone.now(), archive="", **outcome)
    if run.archive.name:
        run.archive.storage.delete(run.archive.name)


def import_runs_fail_stale(*, older_than_seconds: float) -> int:
    """Fail runs still "running" past the limit: their worker was stopped (timeout, memory)
    before it could say so, and their dataset page would otherwise show them running forever."""
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    stale = list(ImportRun.objects.filter(status=ImportRun.Status.RUNNING, started_at__lt=cutoff))
    for run in stale:
        import_run_finish(
            run=run, status=ImportRun.Status.FAILED,
            error=f"The import stopped without finishing within {older_than_seconds:.0f} s (its worker was "
            f"stopped: timeout or memory). {KEPT}",
        )
    return len(stale)


def import_runs_delete(*, datasets) -> int:
    """Before datasets go: their runs, and the archives still waiting."""
    return services.rows_delete_with_files(queryset=ImportRun.objects.filter(dataset__in=datasets), field="archive")
