"""Telling a waiting request that its job is finished, without polling the database.

With Redis (REDIS_URL) the worker pushes the answer it wrote to a short-lived per-job list and
the web side blocks on it (BLMOVE), so a long-poll returns the moment the answer is written, and
with it, without reading the row back. Without Redis, on PostgreSQL, the worker sends the answer
with NOTIFY on the job's channel, which the waiting request LISTENs to on its own connection.
Elsewhere (SQLite) the web side looks at the job row: every 2 ms for the first 0.1 s (answers
usually come within it), then less and less often.
"""

from __future__ import annotations

import json
import logging
import select
import time
from collections.abc import Callable
from uuid import UUID

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from redis.exceptions import RedisError

from classifier.models import PredictionJob
from coffeeclassifier.redis_connections import fail_fast_pool

KEY_SECONDS = 60
NOTIFY_PAYLOAD_LIMIT = 7999  # bytes: PostgreSQL refuses a longer NOTIFY payload
FAST_POLL_SECONDS, FAST_POLL_FOR_SECONDS, SLOWEST_POLL_SECONDS = 0.002, 0.1, 0.05
logger = logging.getLogger(__name__)
_redis = None


def redis_client():
    global _redis
    if _redis is None:
        # a Redis that stops answering must not hold a request longer than its longest wait
        _redis = redis.Redis(connection_pool=fail_fast_pool(
            settings.REDIS_URL, socket_timeout=settings.PREDICTION_LONG_POLL_MAX_SECONDS + 5
        ))
    return _redis


def key(job_id) -> str:
    return f"coffeeclassifier:job-finished:{job_id}"


def channel(job_id) -> str:
    """The job's NOTIFY channel: an identifier of its own, well under PostgreSQL's 63 bytes."""
    return f"job_finished_{UUID(str(job_id)).hex}"


def listening_possible() -> bool:
    """Without Redis, on PostgreSQL, outside a transaction (where LISTEN would wait for its commit)."""
    return not settings.REDIS_URL and connection.vendor == "postgresql" and not connection.in_atomic_block


def job_finished(job_id, *, answer: dict | None = None) -> None:
    """Called by the worker after the job's row holds its final state; `answer` is what it wrote
    there (field name: value, and `version_number`). When the mark cannot be sent (Redis down or
    restarting, the database gone), waiters are not woken early: they read the row when their
    wait ends."""
    if not settings.REDIS_URL and connection.vendor != "postgresql":
        return  # SQLite: waiters read the row
    payload = json.dumps(answer or {}, default=lambda value: value.isoformat())
    if settings.REDIS_URL:
        try:
            pipeline = redis_client().pipeline()
            pipeline.rpush(key(job_id), payload)
            pipeline.expire(key(job_id), KEY_SECONDS)
            pipeline.execute()
        except RedisError:
            logger.warning("Could not tell waiters that job %s is finished: Redis does not answer", job_id)
    else:
        if len(payload.encode()) > NOTIFY_PAYLOAD_LIMIT:  # many labels: the waiter reads the row
            payload = "{}"
        try:
            with connection.cursor() as cursor:  # delivered when the row's update is committed
                cursor.execute("SELECT pg_notify(%s, %s)", [channel(job_id), payload])
        except DatabaseError:
            logger.warning("Could not tell waiters that job %s is finished: the database does not answer", job_id)


def job_wait(job_id, *, seconds: float, still_waiting: Callable[[], bool]) -> dict | None:
    """Return once the job is finished or `seconds` have passed (the caller saw it waiting): the
    answer the worker sent with its mark, or None when the caller must read the row.

    With Redis no query is needed: the worker's mark stays for a minute, so one pushed before
    this call is found at once.
    """
    deadline = time.monotonic() + seconds
    if listening_possible():
        return answer_listened(job_id, deadline=deadline, still_waiting=still_waiting)
    if settings.REDIS_URL:
        try:
            # BLMOVE from a list onto itself waits for the mark and leaves it there (with its
            # expiry) for any other request waiting on the same job: one round trip
            mark = redis_client().blmove(key(job_id), key(job_id), seconds, src="LEFT", dest="LEFT")
            return answer_read(mark) if mark is not None else None
        except RedisError:  # Redis is down: look at the row instead, for the time that is left
            logger.warning("Redis does not answer; waiting for job %s by reading its row", job_id)
    started, interval = time.monotonic(), FAST_POLL_SECONDS
    while time.monotonic() < deadline:
        time.sleep(min(interval, max(deadline - time.monotonic(), 0)))
        if not still_waiting():
            return None
        if time.monotonic() - started > FAST_POLL_FOR_SECONDS:
            interval = min(interval * 2, SLOWEST_POLL_SECONDS)
    return None


def answer_listened(job_id, *, deadline: float, still_waiting: Callable[[], bool]) -> dict | None:
    """Wait for the job's NOTIFY on this thread's database connection: three statements per wait
    (LISTEN, a look at the row for an answer that came before it, UNLISTEN) where polling the row
    costs one every few milliseconds."""
    name = channel(job_id)
    with connection.cursor() as cursor:
        cursor.execute(f"LISTEN {connection.ops.quote_name(name)}")
    database = connection.connection
    try:
        if not still_waiting():
            return None
        while True:
            # psycopg2 also collects notifications while it runs other statements
            for notification in database.notifies:
                if notification.channel == name:
                    return answer_read(notification.payload)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if select.select([database], [], [], remaining)[0]:
                with connection.wrap_database_errors:
                    database.poll()
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"UNLISTEN {connection.ops.quote_name(name)}")
        database.notifies.clear()  # the connection serves later requests


def answer_read(mark: bytes | str) -> dict | None:
    """A mark's answer as model values (datetimes parsed), or None for a mark without one."""
    try:
        answer = json.loads(mark)
    except ValueError:
        return None
    if not isinstance(answer, dict) or not answer:
        return None
    fields = {field.attname: field for field in PredictionJob._meta.concrete_fields}
    return {name: fields[name].to_python(value) if name in fields else value for name, value in answer.items()}
