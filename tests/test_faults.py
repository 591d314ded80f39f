"""Scale-out and faults on the production engines: PostgreSQL, Redis, several queue clusters.

Every test here pushes real photos over HTTP through gunicorn to real `qcluster` processes and
checks each job's row at the end: pushed, done, lost (not done), run more than once. They
need the PostgreSQL test database (the PostgreSQL pass of `.ci/run`, or DATABASE_URL=postgres://…)
and Redis at REDIS_TEST_URL. The tests that restart PostgreSQL or Redis run only where
FAULT_TESTS=1 says that is allowed (CI sets it), never on a developer's own servers by surprise.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
import requests
from django.db import connection
from django.utils import timezone

from classifier.models import ModelVersion, PredictionJob
from classifier.services.training import model_version_activate, model_version_request
from tests.conftest import ROOT, database_url, wait_for
from tests.photos import slow_photo
from tests.servers import cluster_children, redis_available, web_server

RESTARTS_ALLOWED = os.environ.get("FAULT_TESTS") == "1"
PG_VERSION = next(iter(sorted(os.listdir("/etc/postgresql"))), "") if os.path.isdir("/etc/postgresql") else ""
PG_CTL = ["pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, "main"]
REDIS_START = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "",
               "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"]
ONE_SENDER = {"PREDICTION_RATE_LIMIT": "0"}  # every upload here comes from one address
REPORT = ROOT / "test-artifacts" / "reliability.txt"
needs_restarts = pytest.mark.skipif(
    not RESTARTS_ALLOWED, reason="restarts this machine's PostgreSQL and Redis: set FAULT_TESTS=1 to allow (CI does)"
)


@pytest.fixture
def photos(demo_photos) -> list[bytes]:
    return [path.read_bytes() for paths in demo_photos.values() for path in paths[:12]]


class Sender:
    """Clients posting photos to the API from threads, as fast as it answers or at a pace."""

    def __init__(self, base: str, photos: list[bytes]):
        self.base, self.photos = base, photos
        self.ids: list[str] = []
        self.refusals: list[tuple[int, str]] = []
        self.lock = threading.Lock()

    def send(self, index: int, timeout: float = 15) -> requests.Response:
        data = self.photos[index % len(self.photos)]
        try:
            response = requests.post(f"{self.base}/api/v1/predictions",
                                     files={"image": ("photo.jpg", data, "image/jpeg")}, timeout=timeout)
        except requests.RequestException as error:
            with self.lock:
                self.refusals.append((0, repr(error)))
            raise
        with self.lock:
            if response.status_code == 202:
                self.ids.append(response.json()["id"])
            else:
                self.refusals.append((response.status_code, response.text))
        return response

    def send_many(self, count: int, clients: int = 8) -> None:
        counter = iter(range(count))

        def client():
            for index in counter:  # a shared iterator: each index is sent once
                self.send(index)

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def send_until(self, stop: threading.Event, pause: float = 0.05) -> threading.Thread:
        def client():
            index = 0
            while not stop.is_set():
                self.send(index)
                index += 1
                time.sleep(pause)

        thread = threading.Thread(target=client)
        thread.start()
        return thread


def requeue_stale(env: dict, older_than: float) -> None:
    """What the cluster's schedule (or cron) does every minute, run now, on the given broker."""
    subprocess.run([sys.executable, "manage.py", "requeue_stale", "--older-than", str(older_than)], cwd=ROOT,
                   env={**os.environ, "DATABASE_URL": database_url(), **env}, check=True, capture_output=True)


def settle(ids: list[str], env: dict, timeout: float = 240) -> None:
    """Wait until every job is finished; when answers stop coming while some still wait (their
    task was lost with a worker or a broker), sweep them back into the queue as the schedule would."""
    deadline, last_done, quiet_since = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline:
        done = PredictionJob.objects.filter(pk__in=ids).exclude(status__in=PredictionJob.WAITING).count()
        if done == len(ids):
            return
        if done != last_done:
            last_done, quiet_since = done, time.monotonic()
        elif time.monotonic() - quiet_since > 3:
            requeue_stale(env, older_than=3)
            quiet_since = time.monotonic()
        time.sleep(0.5)
    raise AssertionError(f"{len(ids) - last_done} of {len(ids)} jobs still waiting after {timeout} s")


def tally(name: str, sender: Sender) -> Counter:
    """Uploads refused, jobs pushed, done, failed, lost (not finished) and run more than once;
    written down for RESULTS.md."""
    ids = sender.ids
    jobs = PredictionJob.objects.filter(pk__in=ids)
    counts = Counter(
        refused=len(sender.refusals),
        pushed=len(ids),
        done=jobs.filter(status="done").count(),
        failed=jobs.filter(status="failed").count(),
        lost=len(ids) - jobs.exclude(status__in=PredictionJob.WAITING).count(),
        run_twice=jobs.filter(attempts__gt=1).count(),
    )
    REPORT.parent.mkdir(exist_ok=True)
    with REPORT.open("a") as report:
        report.write(f"{time.strftime('%Y-%m-%d %H:%M')} {connection.vendor} {name}: {dict(counts)}\n")
    return counts


def test_two_clusters_on_one_redis_and_postgresql_answer_1000_jobs_exactly_once(
    trained, redis_env, start_qcluster, media_root, ml_cache_root, photos
):
    # two machines' worth of settings: their own name and worker count, one broker, one database,
    # one shared media folder
    start_qcluster(NODE_NAME="machine-a", Q_WORKERS="2", **redis_env)
    start_qcluster(NODE_NAME="machine-b", Q_WORKERS="1", **redis_env)
    with web_server(media_root, ml_cache_root, {**redis_env, **ONE_SENDER}) as base:
        sender = Sender(base, photos)
        sender.send_many(1000)
        assert not sender.refusals and len(sender.ids) == 1000
        settle(sender.ids, redis_env)
    counts = tally("two clusters, 1000 jobs", sender)
    assert counts["done"] == 1000 and counts["lost"] == 0 and counts["run_twice"] == 0, counts
    machines = Counter(
        worker.split(":")[0] for worker in PredictionJob.objects.filter(pk__in=sender.ids).values_list("worker", flat=True)
    )
    assert set(machines) == {"machine-a", "machine-b"} and min(machines.values()) >= 100, machines


def test_a_worker_killed_under_load_loses_no_job(trained, redis_env, start_qcluster, media_root, ml_cache_root, photos):
    cluster = start_qcluster(**redis_env)
    with web_server(media_root, ml_cache_root, {**redis_env, **ONE_SENDER}) as base:
        sender = Sender(base, photos)
        pushing = threading.Thread(target=sender.send_many, args=(300, 4))
        pushing.start()
        wait_for(lambda: PredictionJob.objects.filter(status="done").count() >= 40, timeout=60,
                 message="jobs to flow")
        sender.photos = [slow_photo()]  # one photo that keeps its worker busy for about half a second
        slow = sender.send(0).json()["id"]
        sender.photos = photos
        running = wait_for(lambda: PredictionJob.objects.filter(pk=slow, status="running").first(), timeout=60,
                           interval=0.005, message="a worker to take the slow photo")
        victim = int(running.worker.rsplit(":", 1)[1])
        assert victim in cluster_children(cluster)
        os.kill(victim, signal.SIGKILL)
        pushing.join()
        assert not sender.refusals
        settle(sender.ids, redis_env)
    counts = tally("kill -9 of a worker under load", sender)
    assert counts["done"] == 301 and counts["lost"] == 0, counts
    # only the job its worker died with ran twice; it was answered once, by another worker
    assert counts["run_twice"] == 1 and PredictionJob.objects.get(pk=slow).attempts == 2, counts
    assert PredictionJob.objects.get(pk=slow).worker != running.worker
    assert cluster.poll() is None, "the cluster replaces the dead worker and goes on"


@needs_restarts
def test_a_redis_restart_loses_no_job_and_the_web_answers_while_it_is_down(
    trained, redis_env, start_qcluster, media_root, ml_cache_root, photos
):
    start_qcluster(**redis_env)
    with web_server(media_root, ml_cache_root, {**redis_env, **ONE_SENDER}) as base:
        sender = Sender(base, photos)
        sender.send_many(60, clients=4)  # some answered, some still queued in Redis when it stops
        subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], capture_output=True, check=False)
        try:
            wait_for(lambda: not redis_available(), timeout=10, message="Redis to stop")
            started = time.monotonic()
            response = sender.send(0, timeout=10)
            assert response.status_code == 202, response.text  # stored; sent on once the queue is back
            answer = requests.get(f"{base}/api/v1/predictions/{response.json()['id']}", params={"wait": 2},
                                  timeout=10)
            assert answer.status_code == 200 and answer.json()["status"] == "queued"
            assert time.monotonic() - started < 6, "the web side answers at once, it does not hang"
            health = requests.get(f"{base}/healthz", timeout=10)
            assert health.status_code == 503 and health.json()["broker"] == "error"
            sender.send_many(10, clients=2)
        finally:
            subprocess.run(REDIS_START, check=True)
            wait_for(redis_available, timeout=20, message="Redis to start again")
        sender.send_many(30, clients=4)
        settle(sender.ids, redis_env)
    counts = tally("Redis restart", sender)
    assert not sender.refusals and counts["done"] == 101 and counts["lost"] == 0, counts


@needs_restarts
def test_a_postgresql_restart_loses_no_job(trained, broker_env, start_qcluster, media_root, ml_cache_root, photos):
    start_qcluster(**broker_env)
    with web_server(media_root, ml_cache_root, {**broker_env, **ONE_SENDER}) as base:
        sender = Sender(base, photos)
        stop = threading.Event()
        flowing = sender.send_until(stop)
        try:
            time.sleep(2)
            subprocess.run([*PG_CTL, "restart"], check=True, capture_output=True)
            connection.close()  # this test's own connection died with the server too
            time.sleep(2)
        finally:
            stop.set()
            flowing.join()
        # uploads that reached the web while the database was down were refused with a sentence
        assert all(status == 503 and "database" in text for status, text in sender.refusals), sender.refusals
        sender.send_many(30, clients=4)
        settle(sender.ids, broker_env)
    counts = tally(f"PostgreSQL restart, {'Redis' if broker_env else 'PostgreSQL'} broker", sender)
    assert counts["done"] == len(sender.ids) and counts["lost"] == 0 and counts["failed"] == 0, counts


def test_a_retrain_and_an_activation_while_jobs_flow_fail_no_prediction(
    trained, start_qcluster, media_root, ml_cache_root, photos, settings
):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: a training beside a busy queue is the production path")
    start_qcluster()
    start_qcluster(settings.TRAINING_CLUSTER)
    with web_server(media_root, ml_cache_root, ONE_SENDER) as base:
        sender = Sender(base, photos)
        stop = threading.Event()
        flowing = sender.send_until(stop, pause=0.1)
        try:
            version = model_version_request(dataset=trained, backbone="mobilenet_025")
            wait_for(lambda: ModelVersion.objects.get(pk=version.pk).status in ("ready", "failed"), timeout=300,
                     interval=1, message="the retrain on the training cluster")
            version.refresh_from_db()
            assert version.status == "ready", version.error
            model_version_activate(version=version, confirmed_worse=True)
            activated_at = timezone.now()
            wait_for(lambda: PredictionJob.objects.filter(model_version=version).count() >= 10, timeout=60,
                     message="jobs answered by the new version")
        finally:
            stop.set()
            flowing.join()
        assert not sender.refusals
        settle(sender.ids, {})
    counts = tally("retrain and activation while jobs flow", sender)
    assert counts["done"] == len(sender.ids) and counts["failed"] == 0 and counts["lost"] == 0, counts
    numbers = set(PredictionJob.objects.filter(pk__in=sender.ids).values_list("model_version__number", flat=True))
    assert numbers == {1, 2}
    later = PredictionJob.objects.filter(pk__in=sender.ids, queued_at__gt=activated_at)
    assert later.exists() and not later.exclude(model_version=version).exists()
