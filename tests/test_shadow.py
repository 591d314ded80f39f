"""Shadow mode: a second version runs beside the active one on each live photo, its answer is stored
with the job and shown to curators only; the API lists versions with their marks.

Two real versions of different backbones answer real photos; what the jobs hold is checked against
the two models run here, separately, on the same photos.
"""

import io
import json

import pytest
import requests
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse

from classifier import selectors, tasks
from classifier.ml.predictor import Predictor
from classifier.models import ModelVersion, PredictionJob, WorkerProcess
from classifier.services import predictions, shadow
from classifier.services.shadow import model_version_shadow_start, model_version_shadow_stop
from classifier.services.training import model_version_activate
from classifier.shadow_selectors import shadow_report
from tests.conftest import wait_for
from tests.servers import web_server

API = "/api/v1/predictions"
KEY = "a-key-for-the-shadow-tests-0123456789"


@pytest.fixture
def versions(small_dataset, keras_home, monkeypatch):
    """Version 1 (mobilenet_025) active, version 2 (mobilenet_v2_035) ready; this process holds no model."""
    monkeypatch.setattr(predictions, "_predictor", None)
    monkeypatch.setattr(shadow, "_shadow", None)
    for backbone, extra in (("mobilenet_025", ["--activate"]), ("mobilenet_v2_035", [])):
        call_command("train", "--dataset", small_dataset.slug, "--backbone", backbone, *extra, "--no-progress",
                     stdout=io.StringIO())
    return tuple(ModelVersion.objects.get(dataset=small_dataset, number=number) for number in (1, 2))


@pytest.fixture
def live_photos(demo_photos) -> list[bytes]:
    """Photos of both labels none of the versions trained or was tested on."""
    return [path.read_bytes() for paths in demo_photos.values() for path in paths[3::7][:4]]


def expected_answers(version: ModelVersion, photos: list[bytes]):
    """The version's answers, from its model loaded here on its own."""
    predictor = Predictor(selectors.artifact_path(version=version))
    return [predictor.predict(data) for data in photos]


def upload(client, data: bytes) -> str:
    response = client.post(API, {"image": SimpleUploadedFile("photo.jpg", data, "image/jpeg")})
    assert response.status_code == 202, response.content
    return response.json()["id"]


def test_shadow_answers_are_stored_shown_to_curators_only_and_stop_when_the_version_is_activated(
    staff_client, versions, live_photos, settings, media_root
):
    first, second = versions
    with pytest.raises(ValidationError, match="is the active version"):
        model_version_shadow_start(version=first)
    with pytest.raises(ValidationError, match="No version of .* is in shadow"):
        model_version_shadow_stop(dataset=first.dataset)
    queued = ModelVersion.objects.create(dataset=first.dataset, number=3, backbone="mobilenet_025",
                                         artifact_dir="models/coffee/3")
    with pytest.raises(ValidationError, match="not ready"):
        model_version_shadow_start(version=queued)
    # version 2 doubts every photo (the confidence it trusts is above 1), so the two decisions differ
    metadata_file = media_root / second.artifact_dir / "metadata.json"
    metadata_file.write_text(json.dumps({**json.loads(metadata_file.read_text()), "unsure_below": 1.01}))
    model_version_shadow_start(version=second)
    with pytest.raises(ValidationError, match="in shadow already"):
        model_version_shadow_start(version=second)

    anonymous = Client()
    anonymous.get("/")  # the upload page's session sends the photos
    # a shadow that cannot answer (its model file is gone) leaves the job answered, without a shadow answer
    model_file = media_root / second.artifact_dir / "model.tflite"
    model_file.rename(model_file.with_suffix(".gone"))
    failed = upload(anonymous, live_photos[0])
    tasks.predict(failed)
    job = PredictionJob.objects.get(pk=failed)
    assert (job.status, job.model_version, job.shadow_version, job.shadow_label) == ("done", first, None, "")
    model_file.with_suffix(".gone").rename(model_file)

    ids = [upload(anonymous, data) for data in live_photos]
    for job_id in ids:
        tasks.predict(job_id)
    jobs = [PredictionJob.objects.get(pk=job_id) for job_id in ids]
    answers, shadows = expected_answers(first, live_photos), expected_answers(second, live_photos)
    for job, answer, shadowed in zip(jobs, answers, shadows, strict=True):
        assert job.status == "done" and job.model_version == first and job.label == answer.label
        assert job.shadow_version == second and job.shadow_label == shadowed.label and job.shadow_ms > 0
        assert (job.decision, job.shadow_decision) == (answer.decision, shadowed.decision)
        assert job.shadow_confidence == pytest.approx(shadowed.confidence, abs=1e-5)
        assert job.shadow_probabilities == pytest.approx(shadowed.probabilities, abs=1e-5)

    # the sender gets the answer only; staff and key holders get the shadow's beside it
    sent = anonymous.get(f"{API}/{jobs[0].pk}").json()
    assert (sent["label"], sent["version"], sent["shadow"]) == (jobs[0].label, 1, None)
    seen = staff_client.get(f"{API}/{jobs[0].pk}").json()
    assert seen["shadow"] == {"version": 2, "label": jobs[0].shadow_label, "confidence": jobs[0].shadow_confidence,
                              "decision": jobs[0].shadow_decision}
    settings.API_KEYS = [KEY]
    assert Client().get(f"{API}/{jobs[1].pk}", HTTP_X_API_KEY=KEY).json()["shadow"]["label"] == jobs[1].shadow_label
    settings.API_KEYS = []

    # the version page: agreement over these jobs, the disagreements' gallery, the costs
    agreeing = [answer.label == shadowed.label for answer, shadowed in zip(answers, shadows, strict=True)]
    page = staff_client.get(reverse("admin:classifier_modelversion_change", args=[second.pk]))
    report = page.context["shadow"]
    assert report["jobs"] == len(jobs) and report["agreement"] == pytest.approx(sum(agreeing) / len(jobs))
    assert {job.pk for job in report["disagreements"]} == {job.pk for job, same in zip(jobs, agreeing) if not same}
    assert report["shadow_ms"] > 0 and report["inference_ms"] > 0 and report["added_time"] > 0
    unsure = [sum(one.decision == "unsure" for one in answered) for answered in (answers, shadows)]
    assert unsure[1] == len(jobs) and [report["decided"], report["unsure"], report["shadow_unsure"]] == [
        len(jobs), *unsure]
    html = "".join(render_to_string(f"admin/classifier/modelversion/{name}.html",
                                    {"version": second, "shadow": report, "can_shadow": True})
                   for name in ("_shadow", "_shadow_buttons"))
    assert f"({sum(agreeing)} of {len(jobs)})" in html and "Stop shadowing" in html
    assert f"this version {unsure[1]} of {len(jobs)}, the answer {unsure[0]} of {len(jobs)}" in html
    PredictionJob.objects.filter(pk=jobs[0].pk).update(shadow_decision="")  # shadowed before decisions were kept
    assert shadow_report(version=second)["decided"] == len(jobs) - 1
    job_page = staff_client.get(reverse("admin:classifier_predictionjob_change", args=[jobs[0].pk]))
    both = render_to_string("admin/classifier/predictionjob/_shadow.html", {"original": job_page.context["original"]})
    assert "shadow (not sent)" in both and jobs[0].shadow_label in both

    # activating the shadow version ends its shadowing; the worker takes its loaded model over
    model_version_activate(version=second)
    second.refresh_from_db()
    assert second.is_active and not second.is_shadow
    after = upload(anonymous, live_photos[0])
    tasks.predict(after)
    job = PredictionJob.objects.get(pk=after)
    assert job.model_version == second and job.shadow_version is None and job.shadow_label == ""
    assert predictions._predictor[0] == second.pk and shadow._shadow is None
    assert shadow_report(version=second)["jobs"] == len(jobs)  # what it answered in shadow stays


def test_the_api_lists_versions_with_scores_and_marks_for_key_holders_and_staff(staff_client, versions, settings):
    first, second = versions
    client = Client()  # anonymous
    model_version_shadow_start(version=second)
    body = client.get("/api/v1/models", {"dataset": "coffee"}).json()  # open, like the API, without keys
    assert body["dataset"] == "coffee" and [row["number"] for row in body["versions"]] == [2, 1]
    marks = {row["number"]: (row["is_active"], row["is_shadow"], row["status"]) for row in body["versions"]}
    assert marks == {1: (True, False, "ready"), 2: (False, True, "ready")}
    for row, version in zip(body["versions"], (second, first), strict=True):
        assert row["test_accuracy"] == version.test_accuracy() and row["backbone"] == version.backbone
        assert row["test_coverage"] == version.metrics["test"]["coverage"] and row["field_accuracy"] is None
    assert client.get("/api/v1/models", {"dataset": "nope"}).status_code == 404
    assert 'coffeeclassifier_shadow_model_version{dataset="coffee"} 2.0' in client.get("/metrics").content.decode()
    settings.API_KEYS = [KEY]
    assert client.get("/api/v1/models").status_code == 401
    assert client.get("/api/v1/models", HTTP_X_API_KEY=KEY).json()["versions"][0]["is_shadow"]
    assert staff_client.get("/api/v1/models").status_code == 200
    # the admin's actions: stop, then shadow the other (the list's action), refused on the active one
    staff_client.post(reverse("admin:classifier_modelversion_shadow_stop", args=[second.pk]))
    second.refresh_from_db()
    assert not second.is_shadow
    changelist = reverse("admin:classifier_modelversion_changelist")
    refused = staff_client.post(changelist, {"action": "shadow_start_selected", "_selected_action": [first.pk]},
                                follow=True)
    assert "is the active version" in refused.content.decode()
    staff_client.post(changelist, {"action": "shadow_start_selected", "_selected_action": [second.pk]})
    assert ModelVersion.objects.get(is_shadow=True) == second


def test_a_cluster_answers_first_and_stores_the_shadows_answer_with_one_more_model_per_worker(
    versions, start_qcluster, media_root, ml_cache_root, live_photos, staff_client
):
    second = versions[1]
    model_version_shadow_start(version=second)
    start_qcluster(WORKER_HEARTBEAT_SECONDS="0")  # each job writes its worker's row

    def send(data: bytes) -> dict:
        response = requests.post(f"{base}{API}", params={"wait": 20}, timeout=30,
                                 files={"image": ("photo.jpg", data, "image/jpeg")})
        assert response.status_code == 200, response.text
        return response.json()

    with web_server(media_root, ml_cache_root, {}) as base:
        bodies = [send(data) for data in live_photos]
        assert {(body["status"], body["version"]) for body in bodies} == {("done", 1)}
        assert all(body["shadow"] is None for body in bodies)  # an anonymous sender
        ids = [body["id"] for body in bodies]
        wait_for(lambda: not PredictionJob.objects.filter(pk__in=ids, shadow_label="").exists(), timeout=30,
                 message="the shadow answers")
        shadows = expected_answers(second, live_photos)
        stored = {str(pk): label for pk, label in PredictionJob.objects.values_list("pk", "shadow_label")}
        assert [stored[job_id] for job_id in ids] == [answer.label for answer in shadows]
        assert staff_client.get(f"{API}/{ids[0]}").json()["shadow"]["version"] == 2
        send(live_photos[0])  # a job after the shadow model loaded: its worker's row says so
        held = wait_for(lambda: [row for row in WorkerProcess.objects.all() if "coffee v2 (shadow)" in row.versions],
                        timeout=10, message="a worker's row naming the shadow model it holds")
        assert all(0 < row.shadow_bytes < 60 * 2**20 for row in held), [
            (row.versions, row.shadow_bytes) for row in WorkerProcess.objects.all()
        ]

        model_version_activate(version=second)
        body = send(live_photos[0])
        assert body["version"] == 2 and body["label"] == shadows[0].label
        assert PredictionJob.objects.get(pk=body["id"]).shadow_version is None
