"""Predictions in one process: the web side, the job a worker runs, the API, the page, the admin.

The queue itself is exercised in test_prediction_queue.py; here the worker's entry point is
called directly on the job the web side created.
"""

import datetime
import io
import json
import threading
import time
import uuid

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from prometheus_client import REGISTRY

from classifier import notifications, tasks
from classifier.models import ModelVersion, PredictionJob
from classifier.services import predictions
from classifier.services.maintenance import prediction_job_ids_in_broker
from classifier.services.predictions import (
    prediction_enqueue,
    prediction_feedback_give,
    prediction_job_claim,
    prediction_job_create,
    prediction_job_finish,
    prediction_job_run,
    predictor_for,
    shared_broker,
)
from classifier.services.training import model_version_activate, model_version_request
from classifier.templatetags.classifier_format import label_text
from dataset.models import DatasetImage
from tests.photos import encode, jpeg, photo, png_declaring

pytestmark = pytest.mark.django_db
API = "/api/v1/predictions"


@pytest.fixture
def active_model(small_dataset, keras_home):
    call_command("train", "--dataset", small_dataset.slug, "--backbone", "mobilenet_025", "--activate",
                 "--no-progress", stdout=io.StringIO())
    return ModelVersion.objects.get(dataset=small_dataset, is_active=True)


def upload(client, data: bytes, name: str = "photo.jpg", **headers):
    return client.post(API, {"image": SimpleUploadedFile(name, data, "image/jpeg")}, **headers)


def run_queued_jobs():
    for job_id in PredictionJob.objects.filter(status="queued").values_list("pk", flat=True):
        tasks.predict(str(job_id))


def test_upload_is_queued_answered_and_read_back(client, active_model, media_root, demo_photos,
                                                 django_capture_on_commit_callbacks):
    client.get("/")  # the page opens the browser session that owns the photo
    with django_capture_on_commit_callbacks() as enqueued:
        response = upload(client, demo_photos["coffee"][5].read_bytes())
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and body["url"].endswith(f"{API}/{body['id']}")
    assert len(enqueued) == 1  # queued only once the job row is committed
    job = PredictionJob.objects.get(pk=body["id"])
    assert job.image.name == f"predictions/{job.pk}.jpg" and (media_root / job.image.name).is_file()

    assert client.get(f"{API}/{job.pk}").json()["status"] == "queued"
    run_queued_jobs()
    answer = client.get(f"{API}/{job.pk}").json()
    assert answer["status"] == "done" and answer["version"] == active_model.number
    assert answer["label"] in ("coffee", "not_coffee")
    assert answer["confidence"] == max(answer["probabilities"].values())
    assert len(answer["heatmap"]) == 7 and max(map(max, answer["heatmap"])) == 1.0
    assert answer["inference_ms"] > 0 and answer["total_ms"] >= answer["inference_ms"]
    assert client.get(answer["image_url"])["Content-Type"] == "image/jpeg"


def version_trusts_from(version: ModelVersion, media_root, unsure_below: float) -> None:
    """Rewrite the test's own version's metadata.json with another "unsure" confidence, and drop the
    process's cached predictor, so the next job reads it."""
    path = media_root / version.artifact_dir / "metadata.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "unsure_below": unsure_below}))
    predictions._predictor = None


def test_an_answer_below_the_versions_confidence_is_unsure_in_the_job_the_api_and_the_admin(
    client, staff_client, active_model, media_root, demo_photos, monkeypatch
):
    monkeypatch.setattr(predictions, "_predictor", None)
    client.get("/")
    data = demo_photos["not_coffee"][3].read_bytes()
    version_trusts_from(active_model, media_root, 0.0)
    assert upload(client, data).status_code == 202
    run_queued_jobs()
    answered = PredictionJob.objects.get()
    assert answered.status == "done" and answered.decision == "answered"
    # the same photo, to a version that trusts only answers a hair more confident than this one
    version_trusts_from(active_model, media_root, float(np.nextafter(answered.confidence, 2.0)))
    unsure_id = upload(client, data).json()["id"]
    run_queued_jobs()
    unsure = PredictionJob.objects.get(pk=unsure_id)
    assert unsure.decision == "unsure" and unsure.label == answered.label
    assert unsure.probabilities == answered.probabilities  # the answer is the same; only the trust differs

    body = client.get(f"{API}/{unsure.pk}").json()
    assert (body["decision"], body["label"], body["confidence"]) == ("unsure", unsure.label, unsure.confidence)
    assert client.get(f"{API}/{answered.pk}").json()["decision"] == "answered"
    waiting = prediction_job_create(dataset_slug=active_model.dataset.slug, data=jpeg())
    assert client.get(f"{API}/{waiting.pk}").json()["decision"] is None  # not answered yet
    assert f"not sure, maybe {label_text(unsure.label)}" in client.get("/").content.decode()  # the page's recent photos

    changelist = reverse("admin:classifier_predictionjob_changelist")
    page = staff_client.get(changelist, {"decision__exact": "unsure"})
    assert [job.pk for job in page.context["cl"].result_list] == [unsure.pk]
    assert "By decision" in page.content.decode()
    answered_only = staff_client.get(changelist, {"decision__exact": "answered"}).context["cl"].result_list
    assert [job.pk for job in answered_only] == [answered.pk]


def test_a_job_is_answered_once_however_often_it_is_delivered(active_model, demo_photos):
    job = prediction_job_create(dataset_slug=active_model.dataset.slug, data=demo_photos["coffee"][1].read_bytes())
    first = prediction_job_run(job_id=job.pk)
    assert first.status == "done" and first.attempts == 1
    assert prediction_job_run(job_id=job.pk) is None
    job.refresh_from_db()
    assert job.attempts == 1 and job.finished_at == first.finished_at


def test_when_two_runs_claimed_a_job_the_one_that_answers_records_its_start(active_model):
    """A job sent again (requeue_stale) may be claimed while its first run still works: the row
    ends with the answering run's start, as the answer its waiters got says."""
    job = prediction_job_create(dataset_slug=active_model.dataset.slug, data=jpeg())
    first = prediction_job_claim(job_id=job.pk)
    second = prediction_job_claim(job_id=job.pk)
    assert second.attempts == 2 and second.started_at > first.started_at
    prediction_job_finish(job=first, status=PredictionJob.Status.FAILED, error="slow, but first")
    job.refresh_from_db()
    assert job.started_at == first.started_at and job.worker == first.worker
    assert prediction_job_finish(job=second, status=PredictionJob.Status.DONE).status == "failed"


def queued_task(job_id) -> dict:
    """The task the web side queued for a job, taken from the broker as a cluster takes it."""
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage

    broker = get_broker()
    while packages := broker.dequeue():
        for _, payload in packages:
            if (task := SignedPackage.loads(payload))["args"][0] == str(job_id):
                return task
    raise AssertionError(f"no task was queued for job {job_id}")


def test_a_task_carries_the_job_id_alone_and_its_worker_answers_from_the_stored_photo(
    client, active_model, media_root, django_capture_on_commit_callbacks
):
    """DESIGN §4: tasks carry ids. A phone-sized JPEG is decoded by the worker from storage, as a
    small one is, and its answer is the one the photo gives."""
    big = jpeg("chelsea", size=(2400, 1600), quality=95)
    with django_capture_on_commit_callbacks(execute=True):
        job_id = upload(client, big).json()["id"]
    args = queued_task(job_id)["args"]
    assert list(args) == [str(job_id)]
    tasks.predict(*args)
    job = PredictionJob.objects.get(pk=job_id)
    assert job.status == "done", job.error
    from_photo = predictor_for(version=active_model).predict(big)
    assert job.label == from_photo.label and job.preprocess_ms > 0
    assert job.probabilities == pytest.approx(from_photo.probabilities, abs=1e-6)
    # the photo is what the worker reads: without it, the job fails with a reason, never vanishes
    with django_capture_on_commit_callbacks(execute=True):
        second_id = upload(client, big).json()["id"]
    second = PredictionJob.objects.get(pk=second_id)
    (media_root / second.image.name).unlink()
    tasks.predict(second_id)
    second.refresh_from_db()
    assert second.status == "failed" and "No such file" in second.error


def test_probabilities_are_listed_by_label_whatever_order_they_were_stored_in(client, active_model):
    """The worker writes them in the model's order and PostgreSQL's jsonb reorders keys (shorter
    first): a reply built from the wake-up and one read back from the row must still agree."""
    job = prediction_job_create(dataset_slug=active_model.dataset.slug, data=jpeg())
    claimed = prediction_job_claim(job_id=job.pk)
    prediction_job_finish(job=claimed, status=PredictionJob.Status.DONE, label="espresso",
                                   confidence=0.8, probabilities={"tea": 0.2, "espresso": 0.8})
    assert list(client.get(f"{API}/{job.pk}").json()["probabilities"]) == ["espresso", "tea"]


def test_the_next_job_after_activation_is_answered_by_the_new_version(client, active_model, demo_photos):
    call_command("train", "--dataset", active_model.dataset.slug, "--backbone", "mobilenet_025", "--no-progress",
                 stdout=io.StringIO())
    second = ModelVersion.objects.get(number=2)
    data = demo_photos["not_coffee"][2].read_bytes()
    before = prediction_job_create(dataset_slug=active_model.dataset.slug, data=data)
    prediction_job_run(job_id=before.pk)
    model_version_activate(version=second, confirmed_worse=True)
    after = prediction_job_create(dataset_slug=active_model.dataset.slug, data=data)
    prediction_job_run(job_id=after.pk)
    versions = dict(PredictionJob.objects.values_list("pk", "model_version__number"))
    assert (versions[before.pk], versions[after.pk]) == (1, 2)


def test_without_an_active_model_the_api_and_page_say_so_and_store_nothing(client, small_dataset, media_root):
    response = upload(client, jpeg())
    assert response.status_code == 503
    assert "a curator must train and activate a version" in response.json()["detail"]
    # nothing was written: no row, no file
    assert not PredictionJob.objects.exists() and not list(media_root.glob("predictions/**/*.*"))
    page = client.get("/")
    assert page.status_code == 503 and "a curator must train and activate a version" in page.content.decode()


@pytest.mark.parametrize(
    ("data", "sentence"),
    [
        (b"", "is empty"),
        (b"I am not a photo", "is not an image"),
        (jpeg("coffee")[:2500], "damaged or incomplete"),
        (jpeg("coffee", size=(2400, 1600), quality=95)[:600_000], "damaged or incomplete"),  # decoded for the model
        (png_declaring(50_000, 50_000), "pixels"),
        (encode(photo("coffee"), "TIFF"), "is a TIFF image"),
    ],
)
def test_bad_uploads_get_400_with_a_sentence_and_leave_nothing(client, active_model, media_root, data, sentence):
    response = upload(client, data)
    assert response.status_code == 400 and sentence in response.json()["detail"]
    assert not PredictionJob.objects.exists() and not (media_root / "predictions").exists()


def test_missing_or_doubled_file_fields_are_400(client, active_model):
    response = client.post(API, {})
    assert response.status_code == 400 and "image" in response.json()["detail"]
    two = [SimpleUploadedFile("a.jpg", jpeg(), "image/jpeg"), SimpleUploadedFile("b.jpg", jpeg("chelsea"), "image/jpeg")]
    response = client.post(API, {"image": two})
    assert response.status_code == 400 and "exactly one file" in response.json()["detail"]
    assert not PredictionJob.objects.exists()


def test_a_misspelt_or_doubled_form_field_is_400_not_an_answer_from_the_default_model(client, active_model):
    photo = SimpleUploadedFile("a.jpg", jpeg(), "image/jpeg")
    response = client.post(API, {"image": photo, "datset": "tea"})
    assert response.status_code == 400
    assert response.json()["detail"] == ("Unknown field “datset”: send the photo as “image” and, optionally, "
                                         "the dataset's slug as “dataset”.")
    photo.seek(0)
    response = client.post(API, {"image": photo, "dataset": [active_model.dataset.slug, "tea"]})
    assert response.status_code == 400 and response.json()["detail"] == "Send at most one “dataset”."
    assert not PredictionJob.objects.exists()
    photo.seek(0)
    assert client.post(API, {"image": photo, "dataset": active_model.dataset.slug}).status_code == 202


def test_unknown_or_malformed_job_ids_are_404(client, db):
    assert client.get(f"{API}/not-a-uuid").status_code == 404
    assert client.get(f"{API}/6f1c8a52-6c0b-4d55-9f4b-2b2f2f4f0a11").status_code == 404
    assert client.post(f"{API}/not-a-uuid/feedback", {"correct": True}, content_type="application/json"
                       ).status_code == 404


def test_feedback_records_the_right_label_and_refuses_unknown_ones(client, active_model):
    job = prediction_job_create(dataset_slug=active_model.dataset.slug, data=jpeg("chelsea"))
    response = client.post(f"{API}/{job.pk}/feedback", {"correct": True}, content_type="application/json")
    assert response.status_code == 400 and "not answered yet" in response.json()["detail"]
    prediction_job_run(job_id=job.pk)
    response = client.post(f"{API}/{job.pk}/feedback", {"correct": False, "label": "tea"},
                           content_type="application/json")
    assert response.status_code == 400 and "“tea” is not a label" in response.json()["detail"]
    response = client.post(f"{API}/{job.pk}/feedback", {"correct": False, "label": "not_coffee"},
                           content_type="application/json")
    assert response.status_code == 200 and response.json()["feedback"] == "wrong"
    job.refresh_from_db()
    assert job.feedback_label.name == "not_coffee"


def test_long_poll_returns_as_soon_as_the_job_is_finished(client, active_model):
    job = prediction_job_create(dataset_slug=active_model.dataset.slug, data=jpeg())
    prediction_job_run(job_id=job.pk)
    started = timezone.now()
    assert client.get(f"{API}/{job.pk}", {"wait": 20}).json()["status"] == "done"
    assert (timezone.now() - started).total_seconds() < 2
    pending = prediction_job_create(dataset_slug=active_model.dataset.slug, data=jpeg("rocket"))
    started = timezone.now()
    assert client.get(f"{API}/{pending.pk}", {"wait": 0.3}).json()["status"] == "queued"
    assert (timezone.now() - started).total_seconds() >= 0.3


def test_active_model_endpoint_and_healthz(client, active_model, staff_client):
    body = client.get("/api/v1/models/active").json()
    assert body["version"] == 1 and body["labels"] == ["coffee", "not_coffee"] and body["backbone"] == "mobilenet_025"
    health = Client().get("/healthz")
    assert health.status_code == 200 and health.json() == {"ok": True, "database": "ok", "broker": "ok"}
    report = staff_client.get("/healthz").json()  # the details are for operators
    assert report["ok"] and report["database"] == "ok" and report["broker"] == "ok"
    assert report["active_versions"] == {"coffee": 1} and "queue_depth" in report


def test_openapi_schema_lists_the_endpoints(client, db):
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert {"/api/v1/predictions", "/api/v1/predictions/{job_id}", "/api/v1/predictions/{job_id}/feedback",
            "/api/v1/models/active"} <= set(paths)


def test_a_session_sees_only_its_own_photos(client, active_model):
    client.get("/")
    mine = upload(client, jpeg("coffee")).json()["id"]
    stranger = Client()  # a second browser
    stranger.get("/")
    theirs = upload(stranger, jpeg("rocket")).json()["id"]
    run_queued_jobs()
    page = client.get("/").content.decode()
    assert page.count("<li>") == 1
    assert client.get(reverse("prediction-image", args=[mine])).status_code == 200
    assert client.get(reverse("prediction-image", args=[theirs])).status_code == 404


def test_requeue_stale_sends_lost_jobs_again_and_gives_up_only_after_the_attempts(active_model, settings):
    lost = prediction_job_create(dataset_slug=active_model.dataset.slug, data=jpeg())  # on_commit never ran
    tired = prediction_job_create(dataset_slug=active_model.dataset.slug, data=jpeg("rocket"))
    fresh = prediction_job_create(dataset_slug=active_model.dataset.slug, data=jpeg("chelsea"))
    backlog = prediction_job_create(dataset_slug=active_model.dataset.slug, data=jpeg("astronaut"))
    prediction_enqueue(job_id=backlog.pk)  # its task waits in the broker: no cluster runs
    long_ago = timezone.now() - datetime.timedelta(minutes=10)
    PredictionJob.objects.filter(pk__in=[lost.pk, backlog.pk]).update(enqueued_at=long_ago)
    PredictionJob.objects.filter(pk=tired.pk).update(  # taken by a worker each time, which then died
        status="running", enqueued_at=long_ago, started_at=long_ago, attempts=settings.PREDICTION_MAX_ATTEMPTS
    )
    out = io.StringIO()
    given_up = {"dataset": active_model.dataset.slug, "version": "", "label": "", "decision": "", "status": "failed"}
    failures_before = REGISTRY.get_sample_value("coffeeclassifier_predictions_total", given_up) or 0
    call_command("requeue_stale", stdout=out)
    assert out.getvalue().startswith("1 jobs queued again, 1 failed after too many attempts")
    tired.refresh_from_db()
    assert tired.status == "failed" and "Gave up after 3 tries" in tired.error
    assert REGISTRY.get_sample_value("coffeeclassifier_predictions_total", given_up) == failures_before + 1
    lost.refresh_from_db()
    assert (lost.status, lost.requeues, lost.queued_at) == ("queued", 1, PredictionJob.objects.get(pk=lost.pk).queued_at)
    assert lost.enqueued_at > long_ago and lost.queued_at < lost.enqueued_at  # the upload time is kept
    fresh.refresh_from_db()
    assert fresh.requeues == 0
    for _ in range(5):  # however long the backlog waits, its one task is never doubled nor the job failed
        call_command("requeue_stale", "--older-than", "0", stdout=io.StringIO())
    backlog.refresh_from_db()
    assert (backlog.status, backlog.requeues) == ("queued", 0)
    assert prediction_job_ids_in_broker(broker=shared_broker()) >= {str(backlog.pk)}
    prediction_job_run(job_id=lost.pk)
    assert PredictionJob.objects.get(pk=lost.pk).status == "done"


def test_a_training_whose_worker_was_stopped_is_marked_failed(small_dataset, settings, media_root):
    version = model_version_request(dataset=small_dataset, enqueue=False)
    ModelVersion.objects.filter(pk=version.pk).update(
        status="training", started_at=timezone.now() - datetime.timedelta(seconds=settings.TRAINING_TIMEOUT + 120)
    )
    out = io.StringIO()
    call_command("requeue_stale", stdout=out)
    assert "1 stopped trainings marked failed" in out.getvalue()
    version.refresh_from_db()
    assert version.status == "failed" and "Start a new one." in version.error


def test_a_queued_training_whose_task_was_lost_is_queued_again_once(small_dataset, settings):
    """A Redis restart loses the training tasks it held; with the training queue empty and nothing
    training, a version still queued can only be one of those, and is sent again (not twice)."""
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage

    training_queue = get_broker(settings.TRAINING_CLUSTER)
    lost = model_version_request(dataset=small_dataset, enqueue=False)  # its task never arrived
    recent = model_version_request(dataset=small_dataset, enqueue=False)
    ModelVersion.objects.filter(pk=lost.pk).update(created_at=timezone.now() - datetime.timedelta(minutes=10))
    out = io.StringIO()
    call_command("requeue_stale", stdout=out)
    assert "1 lost trainings queued again" in out.getvalue()
    assert training_queue.queue_size() == 1
    call_command("requeue_stale", stdout=(out := io.StringIO()))  # its task now waits in the queue
    assert "0 lost trainings queued again" in out.getvalue() and training_queue.queue_size() == 1
    task_id, package = training_queue.dequeue()[0]
    assert SignedPackage.loads(package)["args"] == (lost.pk,)
    training_queue.acknowledge(task_id)
    ModelVersion.objects.filter(pk=recent.pk).update(status="training")  # a training runs: others wait for it
    call_command("requeue_stale", stdout=(out := io.StringIO()))
    assert "0 lost trainings queued again" in out.getvalue() and training_queue.queue_size() == 0


def test_purge_removes_old_finished_jobs_and_their_photos(active_model, media_root,
                                                           django_capture_on_commit_callbacks):
    old = prediction_job_create(dataset_slug=active_model.dataset.slug, data=jpeg())
    prediction_job_run(job_id=old.pk)
    old_waiting = prediction_job_create(dataset_slug=active_model.dataset.slug, data=jpeg("chelsea"))
    new = prediction_job_create(dataset_slug=active_model.dataset.slug, data=jpeg("rocket"))
    PredictionJob.objects.filter(pk__in=[old.pk, old_waiting.pk]).update(
        queued_at=timezone.now() - datetime.timedelta(days=40)
    )
    with django_capture_on_commit_callbacks(execute=True):
        call_command("purge_predictions", "--older-than", "30", stdout=io.StringIO())
    assert set(PredictionJob.objects.values_list("pk", flat=True)) == {new.pk, old_waiting.pk}
    assert sorted(path.name for path in (media_root / "predictions").iterdir()) == sorted(
        job.image.name.split("/")[-1] for job in (new, old_waiting)
    )


def test_admin_adds_wrongly_classified_photos_to_the_dataset_with_the_right_label(staff_client, active_model):
    job = prediction_job_create(dataset_slug=active_model.dataset.slug, data=jpeg("chelsea"))
    prediction_job_run(job_id=job.pk)
    prediction_feedback_give(job=job, correct=False, label_name="coffee")
    changelist = reverse("admin:classifier_predictionjob_changelist")
    assert staff_client.get(changelist, {"feedback": "wrong"}).context["cl"].result_count == 1
    for _ in range(2):
        staff_client.post(changelist, {"action": "add_to_dataset", "_selected_action": [job.pk]}, follow=True)
    added = DatasetImage.objects.get(source=DatasetImage.Source.FEEDBACK)
    assert added.label.name == "coffee" and added.dataset == active_model.dataset
    assert DatasetImage.objects.filter(source=DatasetImage.Source.FEEDBACK).count() == 1


def test_deleting_a_dataset_removes_its_photos_jobs_and_model_files(staff_client, active_model, media_root,
                                                                    django_capture_on_commit_callbacks):
    job = prediction_job_create(dataset_slug=active_model.dataset.slug, data=jpeg())
    prediction_job_run(job_id=job.pk)
    dataset = active_model.dataset
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("admin:dataset_dataset_delete", args=[dataset.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not PredictionJob.objects.exists() and not ModelVersion.objects.exists()
    assert not DatasetImage.objects.exists()
    assert not [path for path in media_root.rglob("*") if path.is_file()]


def test_a_failed_job_tells_the_public_a_sentence_and_curators_the_detail(client, active_model):
    job = prediction_job_create(dataset_slug=active_model.dataset.slug, data=jpeg())
    job.image.storage.delete(job.image.name)  # the photo vanished from storage
    prediction_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and "FileNotFoundError" in job.error
    body = client.get(f"{API}/{job.pk}").json()
    assert body["status"] == "failed" and body["error"] == "The model could not answer for this photo; send it again, or another one."


def test_uploads_past_the_rate_limit_get_429_with_retry_after(client, active_model, settings):
    settings.PREDICTION_RATE_LIMIT, settings.PREDICTION_RATE_WINDOW_SECONDS = 2, 60
    assert [upload(client, jpeg(name)).status_code for name in ("coffee", "rocket")] == [202, 202]
    refused = upload(client, jpeg("chelsea"))
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["detail"].startswith("Too many photos: at most 2 every 60 seconds")
    assert PredictionJob.objects.count() == 2
    other = Client(REMOTE_ADDR="192.0.2.7")  # another address has its own allowance
    assert upload(other, jpeg("chelsea")).status_code == 202
    # a forged X-Forwarded-For counts for nothing unless a proxy is trusted
    assert upload(client, jpeg("astronaut"), HTTP_X_FORWARDED_FOR="192.0.2.99").status_code == 429
    settings.TRUST_X_FORWARDED_FOR = True
    assert upload(client, jpeg("astronaut"), HTTP_X_FORWARDED_FOR="192.0.2.99").status_code == 202


def test_browser_posts_need_the_pages_csrf_token_and_api_clients_need_no_cookie(active_model):
    browser = Client(enforce_csrf_checks=True)
    browser.get("/")  # opens the session and sets the CSRF cookie, as the page does
    forged = upload(browser, jpeg())
    assert forged.status_code == 403 and "security token" in forged.json()["detail"]
    token = browser.cookies["csrftoken"].value
    assert upload(browser, jpeg(), HTTP_X_CSRFTOKEN=token).status_code == 202
    job = PredictionJob.objects.get()
    prediction_job_run(job_id=job.pk)
    feedback = browser.post(f"{API}/{job.pk}/feedback", {"correct": True}, content_type="application/json")
    assert feedback.status_code == 403
    api_client = Client(enforce_csrf_checks=True)  # no cookies: a script, not a browser session
    assert upload(api_client, jpeg("rocket")).status_code == 202


def test_with_api_keys_set_scripts_need_one_and_the_upload_page_does_not(active_model, settings):
    settings.API_KEYS = ["key-for-the-shop", "key-for-the-app"]
    script = Client()
    refused = upload(script, jpeg())
    assert refused.status_code == 401 and "X-API-Key" in refused.json()["detail"]
    assert upload(script, jpeg(), HTTP_X_API_KEY="key-for-the-bakery").status_code == 401
    assert script.get("/api/v1/models/active").status_code == 401
    queued = upload(script, jpeg(), HTTP_X_API_KEY="key-for-the-app")
    assert queued.status_code == 202
    assert script.get(f"{API}/{queued.json()['id']}", HTTP_X_API_KEY="key-for-the-shop").status_code == 200
    # the page's own session needs no key (its posts carry the page's CSRF token instead)
    browser = Client(enforce_csrf_checks=True)
    browser.get("/")
    token = browser.cookies["csrftoken"].value
    assert upload(browser, jpeg("chelsea"), HTTP_X_CSRFTOKEN=token).status_code == 202
    # a made-up session cookie opens nothing
    forger = Client()
    forger.cookies["sessionid"] = "made-up-session-key-0123456789"
    assert upload(forger, jpeg("rocket")).status_code == 401
    assert PredictionJob.objects.count() == 2


def test_a_nul_in_a_dataset_or_label_name_is_refused_like_any_unknown_name(client, active_model):
    """PostgreSQL refuses NUL in a query string; such a name must be a 404 or a 400, not a 500."""
    response = client.post(API, {"image": SimpleUploadedFile("p.jpg", jpeg(), "image/jpeg"), "dataset": "cof\x00fee"})
    assert response.status_code == 404 and "no dataset" in response.json()["detail"]
    assert client.get("/api/v1/models/active", {"dataset": "cof\x00fee"}).status_code == 404
    job = prediction_job_create(dataset_slug=active_model.dataset.slug, data=jpeg())
    prediction_job_run(job_id=job.pk)
    response = client.post(f"{API}/{job.pk}/feedback", {"correct": False, "label": "coffee\x00"},
                           content_type="application/json")
    assert response.status_code == 400 and "is not a label" in response.json()["detail"]


def test_with_redis_every_request_waiting_on_a_job_is_woken_by_its_answer(settings, monkeypatch):
    """The worker's mark wakes a long-poll at once, stays for other requests waiting on the same
    job, and expires on its own."""
    from tests.servers import REDIS_TEST_URL, redis_available

    if not redis_available():
        pytest.skip(f"no Redis at {REDIS_TEST_URL}")
    settings.REDIS_URL = REDIS_TEST_URL
    monkeypatch.setattr(notifications, "_redis", None)
    job_id = uuid.uuid4()
    woken, answers = [], []
    waiter = threading.Thread(target=lambda: woken.append(timed(lambda: answers.append(
        notifications.job_wait(job_id, seconds=10, still_waiting=lambda: True)))))
    waiter.start()
    time.sleep(0.3)
    finished_at = timezone.now()
    answer = {"status": "done", "confidence": 0.75, "finished_at": finished_at, "version_number": 3}
    notifications.job_finished(job_id, answer=answer)
    waiter.join()
    assert woken[0] < 1.5  # woken by the mark, not by the 10 s timeout
    assert answers == [answer]  # with what the worker wrote, datetimes to the microsecond
    for _ in range(2):  # later requests find the mark, and its answer, still there
        assert timed(lambda: answers.append(notifications.job_wait(job_id, seconds=10, still_waiting=lambda: True))) < 0.5
    assert answers[1:] == [answer, answer]
    # a mark without an answer (a job failed by the stale sweep) sends the waiter to the row
    notifications.job_finished(failed_id := uuid.uuid4())
    assert notifications.job_wait(failed_id, seconds=10, still_waiting=lambda: True) is None
    assert 0 < notifications.redis_client().ttl(notifications.key(job_id)) <= notifications.KEY_SECONDS
    # a wait shorter than Redis's millisecond is a short wait, not "forever" (0 to Redis)
    assert timed(lambda: notifications.job_wait(uuid.uuid4(), seconds=1e-6, still_waiting=lambda: True)) < 1


@pytest.mark.django_db(transaction=True)  # LISTEN inside a transaction would wait for its commit
def test_on_postgresql_without_redis_a_waiting_request_is_woken_by_notify(settings):
    """The ORM broker's path on PostgreSQL: the worker's NOTIFY wakes the long-poll at once, with
    the answer; nothing is left listening on the connection afterwards."""
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY needs PostgreSQL (set DATABASE_URL); on SQLite a waiter reads the row")
    settings.REDIS_URL = ""
    job_id = uuid.uuid4()
    woken, answers = [], []

    def wait():
        try:
            woken.append(timed(lambda: answers.append(
                notifications.job_wait(job_id, seconds=10, still_waiting=lambda: True))))
        finally:
            connection.close()

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.3)
    answer = {"status": "done", "label": "coffee", "finished_at": timezone.now(), "version_number": 2}
    notifications.job_finished(job_id, answer=answer)
    waiter.join()
    assert woken[0] < 1.5 and answers == [answer]
    # no NOTIFY: the wait ends at its deadline; an answer already in the row ends it at once
    assert 0.2 <= timed(lambda: notifications.job_wait(job_id, seconds=0.2, still_waiting=lambda: True)) < 1.5
    assert timed(lambda: notifications.job_wait(job_id, seconds=10, still_waiting=lambda: False)) < 0.5
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_listening_channels()")
        assert cursor.fetchone()[0] == 0
    # an answer too long for a NOTIFY payload still wakes the waiter, who then reads the row
    threading.Timer(0.3, lambda: (notifications.job_finished(job_id, answer={"error": "x" * 9000}),
                                  connection.close())).start()
    assert timed(lambda: answers.append(notifications.job_wait(job_id, seconds=10, still_waiting=lambda: True))) < 1.5
    assert answers[-1] is None


def timed(call) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started
