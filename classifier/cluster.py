"""The queue cluster that `manage.py qcluster` runs: django-q2's, made to heal itself.

django-q2's processes share two `multiprocessing` queues, and a reader of such a queue waits for
data while holding the queue's lock. A worker killed while idle (SIGKILL, the OOM killer) takes
the lock with it and every other process waits on it forever (django-q2 #23). Here:

- a reader waits for data outside that lock and holds it only to read a message that is
  already in the pipe (`UnlockedWaitQueue`), so killing an idle process holds nothing up;
- every process of the cluster dies with its parent (`PR_SET_PDEATHSIG`): killing the top
  process never leaves workers answering on their own beside the cluster a supervisor restarts;
- the top process (`Supervisor`) starts the cluster again when its sentinel dies or when a
  watchdog says the queue is stalled (photos wait and nothing is answered), whatever wedged it;
  a stop that does not end within the grace period becomes a kill.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from multiprocessing.reduction import ForkingPickler

from django import db
from django_q import cluster as q_cluster
from django_q.conf import Conf
from django_q.queues import Queue

logger = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # linux/prctl.h
READ_LOCK_WAIT_SECONDS = 1.0


class UnlockedWaitQueue(Queue):
    """A django-q2 queue whose blocking `get` waits for data without holding the readers' lock.

    The lock is taken only once the pipe has data, to read that one message; if another reader
    took it first, the reader goes back to waiting. A reader killed while it waits holds nothing.
    """

    def get(self, block=True, timeout=None):
        if not block or timeout is not None:
            return super().get(block, timeout)
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        while True:
            self._reader.poll(None)
            if not self._rlock.acquire(timeout=READ_LOCK_WAIT_SECONDS):
                continue
            try:
                if not self._reader.poll(0):
                    continue  # another reader took the message
                data = self._recv_bytes()
                break
            finally:
                self._rlock.release()
        self._sem.release()
        self.size.increment(-1)
        return ForkingPickler.loads(data)


class Sentinel(q_cluster.Sentinel):
    """django-q2's sentinel, with queues that survive the death of any of their readers."""

    def spawn_cluster(self):
        self.task_queue = UnlockedWaitQueue(maxsize=Conf.QUEUE_LIMIT) if Conf.QUEUE_LIMIT else UnlockedWaitQueue()
        self.result_queue = UnlockedWaitQueue()
        super().spawn_cluster()


_forking_pid = 0


def _remember_parent() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _die_with_parent() -> None:
    """In a new child: ask Linux for SIGKILL when the parent exits, and exit at once if it already has."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != _forking_pid:
        os._exit(1)


def children_die_with_parents() -> None:
    """From now on, every process this one forks (and they fork) is killed when its parent exits."""
    if sys.platform.startswith("linux"):
        os.register_at_fork(before=_remember_parent, after_in_child=_die_with_parent)


class Supervisor:
    """Runs one cluster (sentinel, workers, pusher, monitor) and starts it again when it dies or
    when `watchdog` returns a reason; `after_restart` then runs (e.g. to send again the tasks that
    died with the old cluster). SIGTERM and SIGINT stop it: in order within `grace_seconds`, else
    by killing the cluster."""

    def __init__(
        self,
        *,
        watchdog: Callable[[], str | None] | None = None,
        watch_every_seconds: float = 2.0,
        settle_seconds: float = 20.0,
        grace_seconds: float = 8.0,
        after_restart: Callable[[], None] | None = None,
    ):
        self.watchdog = watchdog
        self.watch_every_seconds = watch_every_seconds
        self.settle_seconds = settle_seconds
        self.grace_seconds = grace_seconds
        self.after_restart = after_restart
        self.stop_requested = False
        self.context = multiprocessing.get_context("fork")
        self.sentinel = None
        self.stop_event = None

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        children_die_with_parents()
        while not self.stop_requested:
            self._start()
            reason = self._watch()
            if reason is None:
                break
            logger.critical("Restarting the queue cluster: %s", reason)
            self._kill()
            if self.after_restart is not None:
                try:
                    self.after_restart()
                except Exception:  # the new cluster must start even if this fails; it is logged
                    logger.exception("After restarting the queue cluster")
                finally:
                    db.connections.close_all()
        self._stop()

    def _request_stop(self, signum, frame) -> None:
        self.stop_requested = True

    def _start(self) -> None:
        db.connections.close_all()  # a forked child must not share this process's connection
        self.stop_event, start_event = self.context.Event(), self.context.Event()
        self.sentinel = self.context.Process(
            target=Sentinel, args=(self.stop_event, start_event, uuid.uuid4()), name=f"Sentinel-{uuid.uuid4().hex}"
        )
        self.sentinel.start()
        self.started = time.monotonic()

    def _watch(self) -> str | None:
        """Sleep until a stop is requested (None) or the cluster needs a restart (why)."""
        next_check = self.started + self.settle_seconds
        while not self.stop_requested:
            if not self.sentinel.is_alive():
                # a sentinel that cannot start (no broker) is not restarted in a tight loop
                time.sleep(max(0.0, self.started + self.settle_seconds / 4 - time.monotonic()))
                return f"its sentinel exited with code {self.sentinel.exitcode}"
            if self.watchdog is not None and time.monotonic() >= next_check:
                next_check = time.monotonic() + self.watch_every_seconds
                db.close_old_connections()  # as around a request: a connection a database restart broke is replaced
                try:
                    reason = self.watchdog()
                except Exception:  # the database is down: nothing to judge by, and no restart would help
                    logger.exception("The queue cluster's watchdog could not look at the queue")
                    reason = None
                if reason:
                    return reason
            time.sleep(0.2)
        return None

    def _kill(self) -> None:
        """Kill the sentinel; its children die with it (PR_SET_PDEATHSIG)."""
        if self.sentinel.is_alive():
            os.kill(self.sentinel.pid, signal.SIGKILL)
        self.sentinel.join()

    def _stop(self) -> None:
        if self.sentinel is None or not self.sentinel.is_alive():
            return
        logger.info("Stopping the queue cluster")
        self.stop_event.set()
        self.sentinel.join(self.grace_seconds)
        if self.sentinel.is_alive():
            logger.warning("The queue cluster did not stop within %s s; killing it", self.grace_seconds)
            self._kill()
