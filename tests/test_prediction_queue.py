"""The real thing: a web server and a queue cluster as separate processes, photos sent over HTTP.

Each test starts gunicorn and `manage.py qcluster` on the test database (ORM broker, or Redis at
REDIS_TEST_URL), uploads real photos and reads the answers back the way a browser would.
"""

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
from django.core.management import call_command
from PIL import Image

from classifier import services
from classifier.models import ModelVersion, PredictionJob
from tests.conftest import ROOT, database_url, wait_for
from tests.photos import photo

REDIS_TEST_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/15")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def redis_available() -> bool:
    import redis

    try:
        return redis.Redis.from_url(REDIS_TEST_URL, socket_timeout=1).ping()
    except redis.RedisError:
        return False


@pytest.fixture
def trained(small_dataset, keras_home):
    call_command("train", "--dataset", small_dataset.slug, "--backbone", "mobilenet_025", "--activate",
                 "--no-progress", stdout=io.StringIO())
    return small_dataset


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


@contextlib.contextmanager
def web_server(media_root, ml_cache_root, extra: dict):
    """gunicorn on a free loopback port, on the test database."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url(), "MEDIA_ROOT": str(media_root),
           "ML_CACHE_DIR": str(ml_cache_root), **extra}
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "coffeeclassifier.wsgi", "-b", f"127.0.0.1:{port}", "--threads", "4",
         "--log-level", "warning"],
        cwd=ROOT, env=env, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: healthy(base), timeout=30, message="gunicorn to answer /healthz")
        yield base
    finally:
        web.terminate()
        web.wait(timeout=20)


def healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


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


def test_uploads_are_answered_by_the_cluster_and_follow_a_new_version(stack, demo_photos, trained):
    base, extra, start_qcluster = stack
    start_qcluster(**extra)
    photos = [path.read_bytes() for label in demo_photos for path in demo_photos[label][1::7][:6]]
    first = [answer(send(base, data)) for data in photos[:4]]
    assert {body["status"] for body in first} == {"done"} and {body["version"] for body in first} == {1}
    truth = ["coffee"] * 6 + ["not_coffee"] * 6
    # version 2 trains while jobs keep flowing, then becomes active
    call_command("train", "--dataset", trained.slug, "--backbone", "mobilenet_025", "--no-progress",
                 stdout=io.StringIO())
    pending = [send(base, data) for data in photos[4:8]]
    services.model_version_activate(version=ModelVersion.objects.get(number=2))
    after = [send(base, data) for data in photos[8:]]
    results = [answer(url) for url in pending + after]
    assert all(body["status"] == "done" for body in results), results
    assert {body["version"] for body in results[len(pending):]} == {2}
    correct = sum(body["label"] == label for body, label in zip(first + results, truth, strict=True))
    assert correct >= 9  # 12 photos the model has not seen (mobilenet_025 on 24 training photos)
    assert PredictionJob.objects.filter(status="done").count() == len(photos)
    assert not PredictionJob.objects.exclude(attempts=1).exists()


def slow_photo() -> bytes:
    """A 49-megapixel JPEG: decoding it keeps a worker busy long enough to be killed mid-job."""
    out = io.BytesIO()
    photo("coffee").resize((7000, 7000), Image.Resampling.BILINEAR).save(out, format="JPEG", quality=85)
    return out.getvalue()


def test_a_worker_killed_mid_job_leaves_a_job_that_is_finished_once(trained, start_qcluster, media_root, settings):
    # short timeout and retry so that the broker hands the orphaned task out again within seconds
    timing = {"Q_TIMEOUT": "8", "Q_RETRY": "10"}
    cluster = start_qcluster(**timing)
    job = services.prediction_job_create(dataset=trained, data=slow_photo())  # enqueued on commit
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


CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")
def test_a_person_uploads_a_photo_sees_the_answer_and_gives_feedback(trained, start_qcluster, media_root,
                                                                     ml_cache_root, demo_photos):
    from playwright.sync_api import expect, sync_playwright

    start_qcluster()
    ARTIFACTS.mkdir(exist_ok=True)
    with web_server(media_root, ml_cache_root, {}) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(base + "/")
        expect(page.locator("#model-version")).to_have_text("1")
        page.set_input_files("#image", str(demo_photos["coffee"][5]))
        expect(page.locator("#answer")).to_be_visible(timeout=30_000)
        label = page.locator("#label").inner_text()
        assert label in ("coffee", "not coffee")
        expect(page.locator("#version")).to_have_text("1")
        assert page.locator("#confidence").inner_text().endswith("%")
        page.check("#show-heatmap")
        expect(page.locator("#heatmap")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "upload-page-answer.png"), full_page=True)

        page.click("#wrong")
        page.select_option("#label-choice", "not_coffee")
        page.click("#send-label")
        expect(page.locator("#thanks")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "upload-page-feedback.png"), full_page=True)

        page.set_input_files("#image", {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not a photo"})
        expect(page.locator("#error")).to_contain_text("is not an image")
        expect(page.locator("#recent li")).to_have_count(1)
        browser.close()
    job = PredictionJob.objects.get(status="done")
    assert (job.feedback, job.feedback_label.name) == ("wrong", "not_coffee")
    assert PredictionJob.objects.count() == 1  # the refused file left no job
