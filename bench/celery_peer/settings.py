"""Settings of the Celery peer: the peers' settings, its URLs and Celery's (read by `celery_app`
under the CELERY_ namespace)."""

import os

from bench.peer_settings import *

ROOT_URLCONF = "bench.celery_peer.urls"

# Its own Redis database: the system's queue in the bench uses BENCH_REDIS_URL (db 14).
CELERY_BROKER_URL = os.environ.get("BENCH_CELERY_REDIS_URL", "redis://127.0.0.1:6379/15")
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
# A task is acknowledged once it has run, and put back when its worker process dies: a crash
# loses no job.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A worker process reserves only the task it runs: none waits behind a busy one.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A child process that dies has its task put back at once by the worker. A task taken by a worker
# that dies whole goes back once unacknowledged for `visibility_timeout` (a task takes well under a
# second, so none is sent twice while it runs), found by a sweep every `unacked_restore_interval` ×
# `unacked_restore_throttle` seconds: about 40 s at worst, within the view's wait, where Redis's
# defaults (an hour, every 100 s) answer nobody who waits.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 30, "unacked_restore_interval": 5,
                                   "unacked_restore_throttle": 1}
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = CELERY_RESULT_SERIALIZER = "json"
