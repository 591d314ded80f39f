"""Worker processes report themselves for the admin's Workers page: a row per process, written
after a job at most every WORKER_HEARTBEAT_SECONDS, so a busy worker pays one write per few
seconds, not one per job."""

from __future__ import annotations

import os
import resource
import time

from django.conf import settings
from django.utils import timezone

from classifier import metrics
from classifier.models import WorkerProcess

_started_at = None
_jobs_done = 0
_reported_at: float | None = None  # monotonic time of the last write; None: never written
_reported_pid = 0


def rss_bytes() -> int:
    """This process's resident memory now (its peak where Linux's /proc is missing)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def worker_job_done() -> None:
    """Count a job this process finished; write its row when the last write is old enough."""
    global _started_at, _jobs_done, _reported_at, _reported_pid
    if _reported_pid != os.getpid():  # a new process (django-q2 forks and recycles its workers)
        _started_at, _jobs_done, _reported_at, _reported_pid = timezone.now(), 0, None, os.getpid()
    _jobs_done += 1
    now = time.monotonic()
    if _reported_at is not None and now - _reported_at < settings.WORKER_HEARTBEAT_SECONDS:
        return
    _reported_at = now
    worker_process_report(jobs_done=_jobs_done, started_at=_started_at)


def worker_process_report(*, jobs_done: int, started_at) -> WorkerProcess:
    from django_q.conf import Conf

    rss = rss_bytes()
    metrics.worker_memory(cluster=Conf.CLUSTER_NAME, rss_bytes=rss)
    row, _ = WorkerProcess.objects.update_or_create(
        node=settings.NODE_NAME, pid=os.getpid(),
        defaults={"cluster": Conf.CLUSTER_NAME, "versions": metrics.loaded_versions(), "jobs_done": jobs_done,
                  "shadow_bytes": metrics.shadow_bytes(),
                  "rss_bytes": rss, "started_at": started_at, "last_seen": timezone.now()},
    )
    return row
