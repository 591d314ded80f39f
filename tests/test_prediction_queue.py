"""The real thing: a web server and a queue cluster as separate processes, photos sent over HTTP.

Each test starts gunicorn and `manage.py qcluster` on the test database (ORM broker, or Redis at
REDIS_TEST_URL), uploads real photos and reads the answers back the way a browser would.
"""

import io
import os
import signal
import time

import pytest
import requests
from django.core.management import call_command

from classifier import selectors
from classifier.ml.predictor import Predictor
from classifier.models import ModelVersion, PredictionJob
from classifier.services.predictions import prediction_job_create
from classifier.services.training import model_version_activate
from tests.conftest import wait_for
from tests.photos import jpeg, slow_photo
from tests.servers import REDIS_TEST_URL, redis_available, web_server


@pytest.fixture(params=["orm", "redis"])
def stack(request, trained, start_qcluster, media_root, ml_cache_root):
    """(base URL, extra env, start_qcluster) for a web server and a cluster on one broker."""
    extra = {}
    if request.param == "redis":
        if not redis_available():
            pytest.skip(f"no Redis at {REDIS_TEST_URL}")
        import redis

        redis.Redis.from_url(REDIS_TEST_URL).flushdb()
        extra["REDIS_URL"] = REDIS_TEST_URL
    with web_server(media_root, ml_cache_root, extra) as base:
        yield base, extra, start_qcluster


def send(base: str, data: bytes, name: str = "photo.jpg") -> str:
    response = requests.post(f"{base}/api/v1/predictions", files={"image": (name, data, "image/jpeg")}, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["url"]


def answer(url: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = requests.get(url, params={"wait": 5}, timeout=15).json()
        if body["status"] in ("done", "failed"):
            return body
    raise AssertionError(f"no answer from {url} within {timeout} s")


def test_uploads_are_answered_by_the_cluster_and_follow_a_new_version(stack, demo_photos, trained, media_root):
    base, extra, start_qcluster = stack
    cluster = start_qcluster(**extra)
    photos = [path.read_bytes() for label in demo_photos for path in demo_photos[label][1::7][:6]]
    first = [answer(send(base, data)) for data in photos[:4]]
    assert {body["status"] for body in first} == {"done"} and {body["version"] for body in first} == {1}
    truth = ["coffee"] * 6 + ["not_coffee"] * 6
    # version 2 trains while jobs keep flowing, then becomes active
    call_command("train", "--dataset", trained.slug, "--backbone", "mobilenet_025", "--no-progress",
                 stdout=io.StringIO())
    pending = [send(base, data) for data in photos[4:8]]
    model_version_activate(version=ModelVersion.objects.get(number=2), confirmed_worse=True)
    after = [send(base, data) for data in photos[8:]]
    results = [answer(url) for url in pending + after]
    assert all(body["status"] == "done" for body in results), results
    assert {body["version"] for body in results[len(pending):]} == {2}
    correct = sum(body["label"] == label for body, label in zip(first + results, truth, strict=True))
    assert correct >= 9  # 12 photos the model has not seen (mobilenet_025 on 24 training photos)
    # the same in one request: POST ?wait= holds the reply until the answer is there
    response = requests.post(f"{base}/api/v1/predictions", params={"wait": 20},
                             files={"image": ("photo.jpg", photos[0], "image/jpeg")}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "done" and response.json()["label"] == first[0]["label"]
    assert response.json()["version"] == 2
    # with Redis the answer comes with the worker's wake-up, not from the row: the two agree
    read_back = requests.get(f"{base}/api/v1/predictions/{response.json()['id']}", timeout=10)
    assert read_back.text == response.text  # the same JSON, key for key
    assert PredictionJob.objects.filter(status="done").count() == len(photos) + 1
    # a phone-sized photo queued while no cluster runs waits in the broker (its task holds the
    # job's id alone) and is answered from the stored photo once a cluster starts
    cluster.terminate()
    cluster.wait(timeout=20)
    big = jpeg("chelsea", size=(2400, 1600), quality=95)
    url = send(base, big, "big.jpg")
    start_qcluster(**extra)
    body = answer(url)
    expected = Predictor(selectors.artifact_path(version=ModelVersion.objects.get(number=2))).predict(big)
    assert body["status"] == "done" and body["label"] == expected.label
    assert body["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)
    assert not PredictionJob.objects.exclude(attempts=1).exists()


def test_a_worker_killed_mid_job_leaves_a_job_that_is_finished_once(trained, start_qcluster, media_root, settings):
    # short timeout and retry so that the broker hands the orphaned task out again within seconds
    timing = {"Q_TIMEOUT": "8", "Q_RETRY": "10"}
    cluster = start_qcluster(**timing)
    job = prediction_job_create(dataset_slug=trained.slug, data=slow_photo())  # enqueued on commit
    wait_for(lambda: PredictionJob.objects.get(pk=job.pk).status == "running", timeout=60, interval=0.005,
             message="a worker to start the job")
    os.killpg(cluster.pid, signal.SIGKILL)
    cluster.wait()
    assert PredictionJob.objects.get(pk=job.pk).status == "running"
    start_qcluster(**timing)
    done = wait_for(lambda: PredictionJob.objects.filter(pk=job.pk, status="done").first(), timeout=90,
                    message="the job to be delivered again and finished")
    assert done.attempts == 2 and done.label in ("coffee", "not_coffee")
    time.sleep(3)  # a duplicate answer, if any, would land now
    assert PredictionJob.objects.get(pk=job.pk).finished_at == done.finished_at

