"""django-q2's ORM broker on PostgreSQL, woken by NOTIFY instead of polling its table.

The stock ORM broker looks at its table every `poll` seconds while the queue is empty: with the
10 ms that keeps latency low, an idle cluster runs ~100 queries a second and a task still waits
5 ms on average for the next look. Here an enqueue also sends NOTIFY on the queue's channel and
an idle pusher waits for it with LISTEN, looking at the table at least once a second anyway (a
task whose lock expired is due again without any NOTIFY). Enqueueing (INSERT and NOTIFY) and
taking tasks (find and lock) are one statement each, where the stock broker's took two or more.
Settings choose it without Redis on PostgreSQL; SQLite keeps the stock broker.
"""

from __future__ import annotations

import logging
import re
import select
import time

from django.db import DatabaseError, connections
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ

IDLE_LOOK_SECONDS = 1.0  # also how soon a pusher sees the cluster's stop event
logger = logging.getLogger(__name__)


def orm_queue_names(database) -> tuple[str, str, str, str, str]:
    """django-q2's queue table and its primary key, key, payload and lock columns, quoted for `database`."""
    meta = OrmQ._meta
    return tuple(database.ops.quote_name(name) for name in (
        meta.db_table, meta.pk.column, *(meta.get_field(field).column for field in ("key", "payload", "lock"))
    ))


class ListeningORM(ORM):
    # the raw connection that LISTENs; a new one must LISTEN again (a class default: django-q2
    # pickles brokers with their queue name only)
    listening_on = None

    @property
    def channel(self) -> str:
        return "django_q_" + re.sub(r"\W", "_", self.list_key)[:50]

    def enqueue(self, task):
        """The task's row and its NOTIFY (delivered once the row is committed) in one statement,
        where the stock INSERT and a NOTIFY took two round trips: every upload runs it."""
        self.get_connection()  # closes a stale connection first, as the stock broker does
        database = connections[Conf.ORM]
        table, pk, key, payload, lock = orm_queue_names(database)
        with database.cursor() as cursor:
            cursor.execute(
                f"WITH queued AS (INSERT INTO {table} ({key}, {payload}, {lock}) VALUES (%s, %s, %s) RETURNING {pk}) "
                f"SELECT {pk}, pg_notify(%s, '') FROM queued",
                [self.list_key or Conf.CLUSTER_NAME, task, timezone.now(), self.channel],
            )
            return cursor.fetchone()[0]

    def dequeue(self):
        try:
            return self.take_or_wait()
        except DatabaseError as error:
            # The database restarts or is gone. django-q2's pusher would sleep 10 s and exit on
            # this; looking again each second on a new connection resumes as soon as it is back.
            logger.warning("The queue's database does not answer (%s); looking again in %s s", error,
                           IDLE_LOOK_SECONDS)
            connections[Conf.ORM].close()
            time.sleep(IDLE_LOOK_SECONDS)
            return None

    def take_or_wait(self):
        """Due tasks, or None after waiting for a NOTIFY (at most IDLE_LOOK_SECONDS)."""
        self.get_connection()  # closes a stale connection first, as the stock broker does;
        # not again before the wait, which must happen on the connection that LISTENs
        database = self.listen()
        database.notifies.clear()  # what they announced, the look below sees
        tasks = self.take_due()
        if tasks or database.notifies:  # more may be due, or one was queued during the look
            return tasks
        # LISTEN began before the look, so whatever is queued from now on wakes the select
        if select.select([database], [], [], IDLE_LOOK_SECONDS)[0]:
            with connections[Conf.ORM].wrap_database_errors:
                database.poll()
        return None

    def take_due(self) -> list[tuple[int, str]]:
        """Lock up to BULK due tasks for this cluster, oldest first, in one statement (the stock
        broker reads them, then locks each with an update of its own). Rows another cluster is
        locking are skipped; one it has just locked is no longer due."""
        database = connections[Conf.ORM]
        table, pk, key, payload, lock = orm_queue_names(database)
        with database.cursor() as cursor:
            # MATERIALIZED: as `WHERE id IN (subquery)` the planner may run the LIMIT once per row
            cursor.execute(
                f"WITH due AS MATERIALIZED (SELECT {pk} FROM {table} WHERE {key} = %s AND {lock} < %s "
                f"ORDER BY {pk} LIMIT %s FOR UPDATE SKIP LOCKED) "
                f"UPDATE {table} q SET {lock} = %s FROM due WHERE q.{pk} = due.{pk} RETURNING q.{pk}, q.{payload}",
                [self.list_key, timezone.now(), Conf.BULK, self.timeout(None)],
            )
            return sorted(cursor.fetchall())

    def listen(self):
        """This process's raw connection, listening on the queue's channel."""
        connection = connections[Conf.ORM]
        connection.close_if_health_check_failed()  # now, not at the look: that must use this connection
        connection.ensure_connection()
        if connection.connection is not self.listening_on:
            with connection.cursor() as cursor:
                cursor.execute(f"LISTEN {connection.ops.quote_name(self.channel)}")
            self.listening_on = connection.connection
        return connection.connection
