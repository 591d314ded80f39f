"""Without Redis, on PostgreSQL, the queue cluster waits for NOTIFY instead of polling its table."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ

from classifier.brokers import IDLE_LOOK_SECONDS, ListeningORM

pytestmark = pytest.mark.django_db(transaction=True)  # LISTEN and NOTIFY act on commit
QUEUE = "test-listening"


@pytest.fixture
def broker():
    if connection.vendor != "postgresql":
        pytest.skip("the listening broker needs PostgreSQL (set DATABASE_URL); on SQLite the cluster polls")
    return ListeningORM(list_key=QUEUE)


def enqueue_later(seconds: float, payload: str) -> None:
    """Enqueue from another thread, so from another database connection, as a web process would."""
    def send():
        try:
            ListeningORM(list_key=QUEUE).enqueue(payload)
        finally:
            connection.close()

    threading.Timer(seconds, send).start()


def timed(call):
    started = time.monotonic()
    result = call()
    return time.monotonic() - started, result


def test_an_idle_broker_waits_for_an_enqueue_instead_of_polling(broker):
    elapsed, tasks = timed(broker.dequeue)
    assert tasks is None and elapsed >= IDLE_LOOK_SECONDS * 0.9  # one look at the table, then it waits
    enqueue_later(0.3, "first")
    elapsed, tasks = timed(broker.dequeue)
    assert tasks is None and 0.25 <= elapsed < IDLE_LOOK_SECONDS * 0.8  # woken by the NOTIFY
    elapsed, tasks = timed(broker.dequeue)
    assert [payload for _, payload in tasks] == ["first"] and elapsed < 0.5
    broker.acknowledge(tasks[0][0])


def test_after_a_reconnect_the_broker_listens_again(broker):
    broker.dequeue()  # listening on this connection
    connection.close()  # as when it grows too old or the server restarts
    enqueue_later(0.3, "second")
    elapsed, tasks = timed(broker.dequeue)  # a new connection, which LISTENs before it looks
    assert tasks is None and elapsed < IDLE_LOOK_SECONDS * 0.8
    assert [payload for _, payload in broker.dequeue()] == ["second"]


def test_a_task_queued_while_nobody_listens_is_found_by_the_first_look(broker):
    ListeningORM(list_key=QUEUE).enqueue("early")
    elapsed, tasks = timed(broker.dequeue)
    assert [payload for _, payload in tasks] == ["early"] and elapsed < 0.5


def test_with_connections_closed_after_each_use_the_broker_still_waits(broker, monkeypatch):
    """CONN_MAX_AGE=0 closes the connection at every look: the broker LISTENs on each new one
    instead of spinning."""
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    connection.close()  # the next connection is made under that setting
    elapsed, tasks = timed(broker.dequeue)
    assert tasks is None and elapsed >= IDLE_LOOK_SECONDS * 0.9
    enqueue_later(0.3, "third")
    elapsed, tasks = timed(broker.dequeue)
    assert tasks is None and elapsed < IDLE_LOOK_SECONDS * 0.8
    assert [payload for _, payload in broker.dequeue()] == ["third"]


def test_tasks_are_taken_one_per_look_oldest_first_and_again_only_once_their_lock_expires(broker):
    for payload in ("a", "b", "c"):
        broker.enqueue(payload)
    # an update writes a new version of the row after the others: a plain scan now finds "a" last
    OrmQ.objects.filter(key=QUEUE, payload="a").update(lock=timezone.now() - timedelta(seconds=1))
    taken = [broker.dequeue() for _ in range(3)]
    assert [[payload for _, payload in tasks] for tasks in taken] == [["a"], ["b"], ["c"]]  # Q_CLUSTER's bulk: 1
    assert broker.take_due() == []  # each is locked for Q_CLUSTER's retry
    OrmQ.objects.filter(pk=taken[1][0][0]).update(lock=timezone.now() - timedelta(seconds=1))  # "b" ran out
    assert [payload for _, payload in broker.take_due()] == ["b"]


def test_two_clusters_looking_at_once_never_take_the_same_task(broker):
    """Each cluster locks what it takes in the one statement that finds it; the other skips it."""
    for index in range(200):
        broker.enqueue(f"task-{index}")
    taken: dict[str, list[str]] = {"one": [], "two": []}
    start = threading.Barrier(2)

    def cluster(name):
        try:
            own = ListeningORM(list_key=QUEUE)
            start.wait()
            while tasks := own.take_due():
                taken[name] += [payload for _, payload in tasks]
        finally:
            connection.close()

    threads = [threading.Thread(target=cluster, args=(name,)) for name in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken["one"] + taken["two"]) == sorted(f"task-{index}" for index in range(200))
    assert taken["one"] and taken["two"]  # both took part
