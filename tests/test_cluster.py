"""The queue cluster heals itself: any of its processes killed, a wedged cluster, its parent gone.

Each test runs the real `manage.py qcluster` and gunicorn on the test database and sends real
photos over HTTP. The ORM broker runs on both databases; the Redis cases need PostgreSQL and Redis.
"""

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import redis
from django_q.conf import Conf
from django_q.models import OrmQ

from classifier.models import PredictionJob
from tests.conftest import wait_for
from tests.servers import cluster_children, descendants, web_server
from tests.test_faults import ONE_SENDER, Sender, requeue_stale, settle, tally


@pytest.fixture
def photos(demo_photos) -> list[bytes]:
    return [path.read_bytes() for paths in demo_photos.values() for path in paths[:6]]


def cluster_ready(cluster, processes: int = 4) -> set[int]:
    """Wait for the cluster's sentinel to have its workers, pusher and monitor; their pids."""
    return wait_for(lambda: len(cluster_children(cluster)) == processes and cluster_children(cluster), timeout=60,
                    message=f"the cluster's {processes} processes")


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def kill_each(cluster, pause: float = 0) -> None:
    """SIGKILL each process of the cluster's sentinel in turn, waiting for its replacement."""
    for victim in sorted(cluster_ready(cluster)):
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda victim=victim: victim not in cluster_children(cluster) and len(cluster_children(cluster)) == 4,
                 timeout=10, message="the sentinel to replace the killed process")
        time.sleep(pause)


def answered_within(ids: list[str], seconds: float) -> None:
    wait_for(lambda: not PredictionJob.objects.filter(pk__in=ids, status__in=PredictionJob.WAITING).exists(),
             timeout=seconds, interval=0.5, message=f"{len(ids)} photos to be answered")
    assert set(PredictionJob.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"done"}


def test_killing_each_idle_process_of_the_cluster_in_turn_stops_no_prediction(
    trained, start_qcluster, media_root, ml_cache_root, photos
):
    # An idle worker waits for its next task; in django-q2 the one that waits first holds the lock
    # of the queue all workers read, and killing it left every other process waiting forever.
    # The watchdog is kept out of it: the cluster must not wedge in the first place.
    cluster = start_qcluster(PREDICTION_STALL_SECONDS="600")
    with web_server(media_root, ml_cache_root, ONE_SENDER) as base:
        sender = Sender(base, photos)
        sender.send_many(4, clients=1)  # every worker has a model loaded and waits again
        answered_within(sender.ids, 60)
        kill_each(cluster)
        started = time.monotonic()
        sender.send_many(20, clients=2)
        answered_within(sender.ids, 30)
    assert time.monotonic() - started < 30
    counts = tally("kill -9 of each idle process of the cluster in turn", sender)
    assert counts["done"] == 24 and counts["run_twice"] == 0, counts


def test_killing_each_worker_under_load_loses_and_repeats_no_job(
    trained, broker_env, start_qcluster, media_root, ml_cache_root, photos
):
    cluster = start_qcluster(**broker_env)
    with web_server(media_root, ml_cache_root, {**broker_env, **ONE_SENDER}) as base:
        sender = Sender(base, photos)
        stop = threading.Event()
        flowing = sender.send_until(stop, pause=0.02)
        try:
            wait_for(lambda: PredictionJob.objects.filter(status="done").count() >= 20, timeout=60,
                     message="jobs to flow")
            kill_each(cluster, pause=0.5)
        finally:
            stop.set()
            flowing.join()
        after = Sender(base, photos)
        after.send_many(20, clients=2)
        answered_within(after.ids, 30)  # the cluster answers new photos by itself at once
        settle(sender.ids, broker_env)  # jobs whose worker died with them go back by the schedule's sweep
    assert not after.refusals
    counts = tally(f"kill -9 of each process of the cluster in turn under load, {'Redis' if broker_env else 'ORM'}",
                   sender)
    assert counts["refused"] == 0 and counts["done"] == counts["pushed"], counts
    # a job sent again after its worker died is answered by one run only: its claim counts each take
    assert counts["run_twice"] <= 4, counts


def test_a_wedged_cluster_is_restarted_by_its_watchdog(trained, start_qcluster, media_root, ml_cache_root, photos):
    # Every process of the cluster frozen, as by native code that never returns: only the
    # watchdog in the top process can see that photos wait and nothing is answered.
    cluster = start_qcluster(PREDICTION_STALL_SECONDS="5")
    with web_server(media_root, ml_cache_root, ONE_SENDER) as base:
        frozen = cluster_ready(cluster)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        sender = Sender(base, photos)
        sender.send_many(10, clients=2)
        answered_within(sender.ids, 30)
    # killed with their sentinel (PR_SET_PDEATHSIG): the kernel may finish them a moment after the new cluster answers
    wait_for(lambda: all(gone(pid) for pid in frozen), timeout=10, message="the frozen processes to be killed")
    counts = tally("every process of the cluster frozen; the watchdog restarts it", sender)
    assert counts["done"] == 10 and counts["refused"] == 0, counts
    assert cluster.poll() is None, "the cluster restarted itself, it did not exit"


def test_no_process_of_a_cluster_outlives_its_parent(trained, start_qcluster):
    cluster = start_qcluster()
    family = {*cluster_ready(cluster), *descendants(cluster.pid)}
    os.kill(cluster.pid, signal.SIGKILL)
    wait_for(lambda: all(gone(pid) for pid in family), timeout=10, message="the cluster's processes to exit")


def test_a_stop_ends_within_its_grace_period_even_when_a_process_hangs(trained, start_qcluster):
    cluster = start_qcluster(Q_STOP_GRACE_SECONDS="3")
    family = {*cluster_ready(cluster), *descendants(cluster.pid)}
    os.kill(min(cluster_children(cluster)), signal.SIGSTOP)  # a worker that can no longer stop by itself
    started = time.monotonic()
    cluster.send_signal(signal.SIGINT)  # Ctrl-C
    assert cluster.wait(timeout=10) == 0
    assert time.monotonic() - started < 6
    wait_for(lambda: all(gone(pid) for pid in family), timeout=5, message="the cluster's processes to exit")


@pytest.fixture(params=["orm", "redis"])
def queue_env(request, transactional_db):
    """The queue in the database (SQLite or PostgreSQL), or in Redis beside PostgreSQL."""
    return request.getfixturevalue("redis_env") if request.param == "redis" else {}


def tasks_waiting(env: dict) -> int:
    """Tasks the broker of `env` holds for the prediction cluster, read as its own client would."""
    if env.get("REDIS_URL"):
        return redis.Redis.from_url(env["REDIS_URL"]).llen(f"django_q:{Conf.CLUSTER_NAME}:q")
    return OrmQ.objects.filter(key=Conf.CLUSTER_NAME).count()


def test_a_backlog_is_sent_once_however_many_sweeps_run_and_nothing_fails(
    trained, queue_env, start_qcluster, media_root, ml_cache_root, photos
):
    # The cluster is down for as long as the sweeps below stand for (ten minutes of a sweep a
    # minute): the photos wait, are sent once, and are all answered once it is back.
    with web_server(media_root, ml_cache_root, {**queue_env, **ONE_SENDER}) as base:
        sender = Sender(base, photos)
        sender.send_many(500, clients=4)
        assert not sender.refusals and len(sender.ids) == 500
        for _ in range(10):
            requeue_stale(queue_env, older_than=0)
        assert tasks_waiting(queue_env) == 500
        assert not PredictionJob.objects.filter(pk__in=sender.ids).exclude(status="queued").exists()
        start_qcluster(**queue_env)
        settle(sender.ids, queue_env, timeout=300)
    counts = tally(f"cluster down, 500 photos, ten sweeps, {'Redis' if queue_env else 'ORM'}", sender)
    assert counts["done"] == 500 and counts["run_twice"] == 0, counts
    assert not PredictionJob.objects.filter(pk__in=sender.ids, requeues__gt=0).exists()
