"""Who reaches what: the page's session, API keys, staff; /healthz; waits; unknown names.

Jobs here never run a model: an active version row lets uploads in, and a finished job is
written as a worker would write it.
"""

import datetime
import re
import threading
import time
from collections import Counter
from contextlib import ExitStack

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from classifier.models import PredictionJob
from classifier.services.limits import TooManyWaits, prediction_wait_hold
from dataset.models import Dataset, Label
from tests.conftest import ROOT, active_version_row, wait_for
from tests.photos import jpeg
from tests.servers import web_server

pytestmark = pytest.mark.django_db
API = "/api/v1/predictions"


@pytest.fixture
def version(db, settings):
    dataset = Dataset.objects.create(name="Coffee or not", slug=settings.DEFAULT_DATASET_SLUG)
    Label.objects.bulk_create([Label(dataset=dataset, name=name) for name in ("coffee", "not_coffee")])
    return active_version_row(dataset)


def upload(client, name: str = "coffee", **headers):
    return client.post(API, {"image": SimpleUploadedFile("photo.jpg", jpeg(name, size=(64, 48)), "image/jpeg")},
                       **headers)


def answered(job_id, version) -> PredictionJob:
    """The job as a worker leaves it once it has answered."""
    PredictionJob.objects.filter(pk=job_id).update(
        status=PredictionJob.Status.DONE, label="coffee", confidence=0.9,
        probabilities={"coffee": 0.9, "not_coffee": 0.1}, model_version=version,
    )
    return PredictionJob.objects.get(pk=job_id)


def page_session() -> Client:
    """A browser that opened the upload page (its session, its CSRF cookie)."""
    browser = Client()
    browser.get("/")
    return browser


def test_an_unknown_dataset_in_the_page_address_is_not_found_and_says_so(client, version):
    response = client.get("/", {"dataset": "nope"})
    assert response.status_code == 404
    assert "There is no dataset “nope”." in response.content.decode()
    assert client.get("/").status_code == 200


def test_unknown_job_ids_say_a_sentence(client, db):
    for job_id in ("6f1c8a52-6c0b-4d55-9f4b-2b2f2f4f0a11", "not-a-uuid"):
        response = client.get(f"{API}/{job_id}")
        assert response.status_code == 404 and response.json() == {"detail": f"No prediction with id “{job_id}”."}
        response = client.post(f"{API}/{job_id}/feedback", {"correct": True}, content_type="application/json")
        assert response.status_code == 404 and response.json() == {"detail": f"No prediction with id “{job_id}”."}


def test_with_api_keys_a_page_session_reaches_only_its_own_jobs(version, settings):
    """GET / hands out a session and a CSRF token: with them a script uploads without a key, but
    reaches nothing beyond the jobs it sent itself."""
    settings.API_KEYS = ["key-for-the-app"]
    script = page_session()
    mine = upload(script).json()["id"]
    theirs = upload(page_session(), "rocket").json()["id"]
    by_key = upload(Client(), "chelsea", HTTP_X_API_KEY="key-for-the-app").json()["id"]
    for job_id in (mine, theirs, by_key):
        answered(job_id, version)
    assert script.get(f"{API}/{mine}").status_code == 200
    for job_id in (theirs, by_key):
        response = script.get(f"{API}/{job_id}")
        assert response.status_code == 404 and response.json() == {"detail": f"No prediction with id “{job_id}”."}
        feedback = script.post(f"{API}/{job_id}/feedback", {"correct": True}, content_type="application/json")
        assert feedback.status_code == 404
    assert script.post(f"{API}/{mine}/feedback", {"correct": True}, content_type="application/json").status_code == 200
    refused = script.get("/api/v1/models/active")
    assert refused.status_code == 401 and "X-API-Key" in refused.json()["detail"]
    # a key holder reaches everything
    holder = Client(HTTP_X_API_KEY="key-for-the-app")
    assert holder.get("/api/v1/models/active").status_code == 200
    assert all(holder.get(f"{API}/{job_id}").status_code == 200 for job_id in (mine, theirs, by_key))


@pytest.mark.parametrize("keys", [[], ["key-for-the-app"]])
def test_feedback_comes_only_from_the_session_that_sent_the_photo_or_a_key_holder(version, settings, keys):
    settings.API_KEYS = keys
    sender = page_session()
    job_id = upload(sender).json()["id"]
    answered(job_id, version)
    wrong = {"correct": False, "label": "not_coffee"}
    stranger = Client()  # had the id (say, from a shared link), not the session
    refused = stranger.post(f"{API}/{job_id}/feedback", wrong, content_type="application/json")
    assert refused.status_code == (403 if not keys else 401)
    other_page = page_session()
    refused = other_page.post(f"{API}/{job_id}/feedback", wrong, content_type="application/json")
    assert refused.status_code == (403 if not keys else 404)
    if not keys:
        assert refused.json() == {"detail": "Only the browser session that sent this photo can give feedback on it."}
    assert PredictionJob.objects.get(pk=job_id).feedback == ""
    assert sender.post(f"{API}/{job_id}/feedback", {"correct": True}, content_type="application/json").json()[
        "feedback"] == "correct"
    if keys:
        holder = Client(HTTP_X_API_KEY="key-for-the-app")
        assert holder.post(f"{API}/{job_id}/feedback", wrong, content_type="application/json").status_code == 200
        assert PredictionJob.objects.get(pk=job_id).feedback == "wrong"


def test_a_photo_sent_without_a_session_takes_feedback_from_callers_of_the_open_api(version):
    job_id = upload(Client()).json()["id"]
    answered(job_id, version)
    another_script = Client()
    response = another_script.post(f"{API}/{job_id}/feedback", {"correct": False, "label": "not_coffee"},
                                   content_type="application/json")
    assert response.status_code == 200 and response.json()["feedback"] == "wrong"


def test_the_photo_needs_the_jobs_view_permission_the_session_or_a_key(version, settings, django_user_model):
    from django.contrib.auth.models import Permission

    sender = page_session()
    job_id = upload(sender).json()["id"]
    answered(job_id, version)
    photo = f"/predictions/{job_id}/image"
    assert sender.get(photo).status_code == 200
    assert sender.get(f"{API}/{job_id}").json()["image_url"] == f"http://testserver{photo}"
    staff = django_user_model.objects.create_user("helper", password="a-long-test-password", is_staff=True)
    staff_browser = Client()
    staff_browser.force_login(staff)
    assert staff_browser.get(photo).status_code == 404  # staff, but not allowed to view jobs
    staff.user_permissions.add(Permission.objects.get(codename="view_predictionjob"))
    staff_browser.force_login(django_user_model.objects.get(pk=staff.pk))  # permissions are cached per user object
    assert staff_browser.get(photo).status_code == 200
    # without keys, a script gets no photo address it could not open
    script = Client()
    assert script.get(f"{API}/{job_id}").json()["image_url"] is None
    assert script.get(photo).status_code == 404
    # with keys, a key holder gets one and opens it with the key
    settings.API_KEYS = ["key-for-the-app"]
    holder = Client(HTTP_X_API_KEY="key-for-the-app")
    image_url = holder.get(f"{API}/{job_id}").json()["image_url"]
    assert image_url == f"http://testserver{photo}"
    opened = holder.get(image_url)
    assert opened.status_code == 200 and opened["Content-Type"] == "image/jpeg"
    assert Client(HTTP_X_API_KEY="key-for-the-shop").get(photo).status_code == 404


def test_healthz_is_503_with_a_sentence_when_photos_wait_and_nothing_is_answered(version, settings,
                                                                                   django_user_model):
    settings.API_KEYS = ["key-for-the-monitor"]
    job_id = upload(Client(HTTP_X_API_KEY="key-for-the-monitor")).json()["id"]
    assert Client().get("/healthz").json() == {"ok": True, "database": "ok", "broker": "ok"}
    # the photo was sent over a minute ago and no worker has taken or answered anything since
    PredictionJob.objects.filter(pk=job_id).update(enqueued_at=timezone.now() - datetime.timedelta(seconds=60))
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json() == {
        "ok": False, "database": "ok", "broker": "ok",
        "detail": f"1 photo(s) have waited over {settings.PREDICTION_STALL_SECONDS} s and no prediction was answered in that time: "
                  "the queue cluster is not running or is stalled.",
    }
    # operators see the details: staff, and key holders
    staff = Client()
    staff.force_login(django_user_model.objects.create_user("operator", password="a-long-password", is_staff=True))
    for operator in (staff, Client(HTTP_X_API_KEY="key-for-the-monitor")):
        report = operator.get("/healthz").json()
        assert report["jobs_waiting"] == 1 and report["active_versions"] == {"coffee": 1}
        assert {"queue_depth", "last_job_finished"} <= set(report) and not report["ok"]
    # a job answered since is progress: well again
    answered(upload(Client(HTTP_X_API_KEY="key-for-the-monitor"), "rocket").json()["id"], version)
    PredictionJob.objects.exclude(pk=job_id).update(finished_at=timezone.now())
    assert Client().get("/healthz").status_code == 200


def test_the_openapi_schema_asks_for_a_key_only_when_keys_are_set_and_a_wrong_answer_for_its_label(client, settings):
    operations = [operation for path in client.get("/api/v1/openapi.json").json()["paths"].values()
                  for operation in path.values()]
    assert operations and not any("security" in operation for operation in operations)
    settings.API_KEYS = ["key-for-the-app"]
    schema = client.get("/api/v1/openapi.json").json()
    assert all(operation["security"] for path in schema["paths"].values() for operation in path.values())
    assert {scheme["name"] for scheme in schema["components"]["securitySchemes"].values()} == {"X-API-Key"}
    body = schema["paths"]["/api/v1/predictions/{job_id}/feedback"]["post"]["requestBody"]
    right, wrong = body["content"]["application/json"]["schema"]["oneOf"]
    assert right["properties"]["correct"]["const"] is True and right["required"] == ["correct"]
    assert wrong["properties"]["correct"]["const"] is False and wrong["required"] == ["correct", "label"]
    response = Client(HTTP_X_API_KEY="key-for-the-app").post(
        f"{API}/6f1c8a52-6c0b-4d55-9f4b-2b2f2f4f0a11/feedback", {"correct": False}, content_type="application/json")
    assert response.status_code == 400 and response.json() == {"detail": "Invalid request: feedback.label: Field required."}


def test_waits_are_capped_per_client_address_and_per_process(settings):
    settings.PREDICTION_WAITS_PER_CLIENT, settings.PREDICTION_WAITS_PER_PROCESS = 2, 3
    with ExitStack() as held:
        for _ in range(2):
            held.enter_context(prediction_wait_hold(client="192.0.2.1"))
        with pytest.raises(TooManyWaits) as refused:
            held.enter_context(prediction_wait_hold(client="192.0.2.1"))
        assert refused.value.per_client
        assert str(refused.value) == ("Too many waiting requests: at most 2 at once from one address. "
                                      "Ask again in 1 s, or without `wait`.")
        held.enter_context(prediction_wait_hold(client="192.0.2.2"))
        with pytest.raises(TooManyWaits) as refused:
            held.enter_context(prediction_wait_hold(client="192.0.2.3"))
        assert not refused.value.per_client and "holding all the waiting requests it can" in str(refused.value)
    with prediction_wait_hold(client="192.0.2.1"), prediction_wait_hold(client="192.0.2.1"):
        pass  # the ended waits gave their places back


@pytest.mark.django_db(transaction=True)  # the server reads what this test writes
def test_twenty_waits_from_one_client_leave_healthz_and_uploads_answering_at_once(media_root, ml_cache_root):
    """gunicorn as the README runs it (2 processes × 8 threads): one client's waits take at most
    4 threads of each process; the others answer /healthz, uploads and long URLs at once."""
    active_version_row(Dataset.objects.create(name="Coffee or not", slug="coffee"))
    options = re.search(r"`gunicorn coffeeclassifier\.wsgi -b \S+ ([^`]*)`", (ROOT / "README.md").read_text())[1]
    with web_server(media_root, ml_cache_root, {}, options=tuple(options.split())) as base:
        photo = {"image": ("photo.jpg", jpeg(size=(64, 48)), "image/jpeg")}
        job_id = requests.post(f"{base}{API}", files=photo, timeout=10).json()["id"]
        answers = []

        def wait():
            answers.append(requests.get(f"{base}{API}/{job_id}", params={"wait": 30}, timeout=60))

        waits = [threading.Thread(target=wait) for _ in range(20)]
        for thread in waits:
            thread.start()
        wait_for(lambda: len(answers) >= 12, timeout=20, message="the waits past the caps to be refused")
        time.sleep(0.5)  # the last refusals arrive; the waits held stay
        started = time.monotonic()
        health = requests.get(f"{base}/healthz", timeout=10)
        assert health.status_code == 200 and time.monotonic() - started < 1
        started = time.monotonic()
        assert requests.post(f"{base}{API}", files=photo, timeout=10).status_code == 202
        assert time.monotonic() - started < 1
        long_url = requests.get(f"{base}{API}/{'x' * 5000}", timeout=10)  # past gunicorn's default 4094
        assert long_url.status_code == 404 and long_url.json()["detail"].startswith("No prediction with id")
        PredictionJob.objects.filter(pk=job_id).update(status=PredictionJob.Status.DONE, label="coffee",
                                                       confidence=0.9, finished_at=timezone.now())
        for thread in waits:
            thread.join(timeout=30)
    statuses = Counter(answer.status_code for answer in answers)
    assert sum(statuses.values()) == 20 and statuses[429] >= 12 and statuses[200] == 20 - statuses[429], statuses
    for answer in answers:
        if answer.status_code == 429:
            assert answer.headers["Retry-After"] == "1"
            assert "at most 4 at once from one address" in answer.json()["detail"]
        else:
            assert answer.json()["status"] == "done"


def test_past_its_waits_a_client_is_told_when_to_ask_again_and_its_uploads_answer_at_once(client, version, settings):
    settings.PREDICTION_WAITS_PER_CLIENT = 1
    with prediction_wait_hold(client="127.0.0.1"):  # this client's one wait, held meanwhile
        started = time.monotonic()
        response = client.post(f"{API}?wait=10", {"image": SimpleUploadedFile("p.jpg", jpeg(size=(64, 48)))})
        assert response.status_code == 202 and time.monotonic() - started < 2  # stored, queued, not refused
        refused = client.get(response.json()["url"], {"wait": 10})
        assert refused.status_code == 429 and refused["Retry-After"] == "1"
        assert refused.json()["detail"].startswith("Too many waiting requests: at most 1 at once from one address.")
        assert client.get(response.json()["url"]).status_code == 200  # a look without waiting is no wait
