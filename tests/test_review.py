"""The learning loop on the real thing: photos answered by a queue cluster with a trained model,
labelled in the review queue (by its JSON endpoint and in a real browser), and every ready
version scored on the field set by the training cluster."""

import io
import json
import time

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from classifier import selectors_review
from classifier.ml.predictor import Predictor
from classifier.models import FieldAnswer, FieldScore, FieldScoring, PredictionJob
from classifier.selectors import artifact_path
from classifier.services.field_set import field_set_score
from classifier.services.predictions import prediction_feedback_give, prediction_job_create
from dataset.models import DatasetImage
from dataset.selectors import file_read
from tests.browser import ARTIFACTS, LAPTOP, PHONE, admin_logged_in, chromium, needs_chromium
from tests.conftest import wait_for
from tests.photos import PHOTO_NAMES, jpeg
from tests.servers import web_server

LABEL_URL = "admin:classifier_reviewitem_label"


def answered(dataset, photos: list[bytes]) -> list[PredictionJob]:
    """Jobs for `photos`, answered by the running prediction cluster, in the order given."""
    ids = [prediction_job_create(dataset_slug=dataset.slug, data=data).pk for data in photos]
    wait_for(lambda: PredictionJob.objects.filter(pk__in=ids, status="done").count() == len(ids), timeout=120,
             message=f"{len(ids)} answers")
    jobs = PredictionJob.objects.in_bulk(ids)
    return [jobs[pk] for pk in ids]


def curator_client(name: str = "curator") -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser(name, f"{name}@example.com", "a-long-test-password"))
    return client


def label(client: Client, job: PredictionJob, **body):
    return client.post(reverse(LABEL_URL), json.dumps({"job": str(job.pk), **body}), content_type="application/json")


def other_label(job: PredictionJob) -> str:
    return "not_coffee" if job.label == "coffee" else "coffee"


def test_a_photo_marked_wrong_comes_first_and_enters_the_dataset_once(trained, start_qcluster, demo_photos):
    start_qcluster()
    photos = [path.read_bytes() for path in demo_photos["coffee"][3::7][:3] + demo_photos["not_coffee"][3::7][:3]]
    jobs = answered(trained, photos)
    # two answers this version doubts (what a version with a higher unsure_below would say)
    PredictionJob.objects.filter(pk__in=[jobs[0].pk, jobs[1].pk]).update(decision="unsure")
    jobs = [PredictionJob.objects.get(pk=job.pk) for job in jobs]
    wrong = jobs[-1]
    prediction_feedback_give(job=wrong, correct=False, label_name=other_label(wrong))
    client = curator_client()

    page = client.get(reverse("admin:classifier_reviewitem_changelist"), {"dataset": trained.slug})
    assert page.status_code == 200
    queue = page.context["jobs"]
    assert queue[0].pk == wrong.pk and queue[0].review_tier == "wrong"
    # the rest are the answers the model doubted, least confident first; sure answers are not there
    rest = [job for job in jobs[:-1] if job.decision == "unsure" or job.confidence < selectors_review.LOW_CONFIDENCE]
    assert [job.pk for job in queue[1:]] == [job.pk for job in sorted(rest, key=lambda job: job.confidence)]
    assert page.context["waiting"] == {"wrong": 1, "unsure": len(rest), "disagreement": 0}
    assert reverse("admin:classifier_reviewitem_changelist") in client.get(reverse("admin:index")).content.decode()

    truth = other_label(wrong)
    first = label(client, wrong, label=truth)
    assert first.status_code == 200, first.content
    again = label(client, wrong, label=truth)
    assert again.status_code == 200 and again.json()["image"] == first.json()["image"]
    images = DatasetImage.objects.filter(dataset=trained, source=DatasetImage.Source.REVIEW)
    assert [(image.label.name, image.split in ("train", "val", "test")) for image in images] == [(truth, True)]
    wrong.refresh_from_db()
    assert wrong.review_label.name == truth and wrong.reviewed_by.username == "curator" and wrong.reviewed_at
    assert wrong.pk not in {job.pk for job in selectors_review.review_queue(dataset=trained)}
    # relabelled: still one image, which the review put there, so it takes the new label
    assert label(client, wrong, label=wrong.label).json()["label"] == wrong.label
    assert images.count() == 1 and images.get().label.name == wrong.label

    # a skip hides the photo from this curator's queue only, and writes nothing
    assert len(rest) >= 2
    assert label(client, rest[0], skip=True).json() == {"job": str(rest[0].pk), "skipped": True}
    assert rest[0].pk not in {job.pk for job in client.get(
        reverse("admin:classifier_reviewitem_changelist"), {"dataset": trained.slug}).context["jobs"]}
    assert rest[0].pk in {job.pk for job in curator_client("second").get(
        reverse("admin:classifier_reviewitem_changelist"), {"dataset": trained.slug}).context["jobs"]}
    # staff without the right to add dataset images may not label
    clerk = get_user_model().objects.create_user("clerk", "k@example.com", "a-long-test-password", is_staff=True)
    clerk_client = Client()
    clerk_client.force_login(clerk)
    assert label(clerk_client, rest[1], label="coffee").status_code == 403
    # refusals say why and change nothing
    assert label(client, jobs[0], label="tea").status_code == 400
    assert "not a label" in label(client, jobs[0], label="tea").json()["error"]
    assert client.post(reverse(LABEL_URL), "{", content_type="application/json").status_code == 400
    assert images.count() == 1 and PredictionJob.objects.filter(review_label__isnull=False).count() == 1


def test_versions_are_scored_on_the_field_set_by_the_training_cluster(trained, start_qcluster, demo_photos,
                                                                      settings):
    start_qcluster()
    start_qcluster(settings.TRAINING_CLUSTER)
    first, second = answered(trained, [demo_photos["coffee"][5].read_bytes(), demo_photos["not_coffee"][5].read_bytes()])
    version = first.model_version

    # feedback "right": the true label is the answer, which the scoring must reproduce from the pixels
    prediction_feedback_give(job=first, correct=True)
    score = wait_for(lambda: FieldScore.objects.filter(version=version).first(), timeout=120,
                     message="the training cluster to score the version")
    assert (score.photos, score.accuracy) == (1, 1.0)
    assert score.per_label[first.label]["recall"] == 1.0 and score.per_label[first.label]["support"] == 1
    [first_answer] = FieldAnswer.objects.filter(version=version)

    # a curator gives the second photo the label the model did not answer: the score moves
    response = label(curator_client(), second, label=other_label(second))
    assert response.status_code == 200, response.content
    latest = wait_for(lambda: FieldScore.objects.filter(version=version, photos=2).first(), timeout=120,
                      message="a new scoring with the labelled photo")
    assert latest.accuracy == 0.5
    assert sum(scores["support"] for scores in latest.per_label.values()) == 2
    assert latest.per_label[other_label(second)]["recall"] < 1.0  # the second photo was missed
    scorings = FieldScoring.objects.filter(dataset=trained)
    assert {scoring.status for scoring in scorings} == {"done"} and scorings.count() == 2
    assert [score.pk for score in selectors_review.field_scores_latest(dataset=trained)] == [latest.pk]
    # a version answers a photo once: the second scoring ran only the new photo
    answers = FieldAnswer.objects.filter(version=version)
    assert answers.count() == 2 and answers.filter(pk=first_answer.pk, job=first).exists()

    # a new version is scored once it is ready, but not on the reviewed photo if it trained on it
    call_command("train", "--dataset", trained.slug, "--backbone", "mobilenet_025", "--no-progress",
                 stdout=io.StringIO())
    newer = wait_for(lambda: FieldScore.objects.filter(version__number=2).first(), timeout=120,
                     message="the training cluster to score version 2")
    reviewed_image = DatasetImage.objects.get(dataset=trained, source=DatasetImage.Source.REVIEW)
    seen = int(reviewed_image.split in ("train", "val"))
    assert newer.left_out == ({"seen_in_training": 1} if seen else {}) and newer.photos == 2 - seen
    assert FieldScore.objects.filter(version=version).count() == 3  # version 1 scored again beside it


def test_scorings_wait_one_at_a_time_per_dataset(trained, start_qcluster, demo_photos, media_root):
    """Labelled photos arriving while a scoring waits join it rather than queue another."""
    start_qcluster()
    # the first photo is one the version trained on (every 7th photo, from the first, is in its dataset)
    photos = [path.read_bytes() for path in demo_photos["coffee"][7:11]]
    jobs = answered(trained, [*photos, photos[1]])  # the second photo is sent again, last
    for job in jobs[:4]:
        prediction_feedback_give(job=job, correct=True)
    prediction_feedback_give(job=jobs[4], correct=False, label_name=other_label(jobs[4]))
    queued = FieldScoring.objects.get(dataset=trained, status="queued")
    # the task's body, here: the photo it trained on and a job whose photo file is gone are left
    # out; the photo sent twice counts once, with its newest label (which the answer misses)
    (media_root / jobs[3].image.name).unlink()
    field_set_score(scoring_id=queued.pk)
    score = FieldScore.objects.get(scoring=queued)
    assert (score.photos, score.accuracy) == (2, 0.5)
    assert score.left_out == {"seen_in_training": 1, "photo_missing": 1, "sent_again": 1}
    assert field_set_score(scoring_id=queued.pk) is None  # delivered twice, it runs once
    assert FieldScore.objects.filter(scoring=queued).count() == 1


def small_photos(count: int) -> list[bytes]:
    """`count` different small real photos (scikit-image's samples at different sizes)."""
    return [jpeg(PHOTO_NAMES[i % len(PHOTO_NAMES)], size=(72 + i, 64 + i), quality=80) for i in range(count)]


@needs_chromium
def test_a_curator_labels_photos_with_the_keyboard_and_they_enter_the_dataset(
    trained, start_qcluster, media_root, ml_cache_root,
):
    from playwright.sync_api import expect

    start_qcluster()
    jobs = answered(trained, small_photos(101))
    # make every answer doubtful to this version, so all wait in the queue: one marked wrong first
    wrong = jobs[0]
    prediction_feedback_give(job=wrong, correct=False, label_name=other_label(wrong))
    PredictionJob.objects.filter(pk__in=[job.pk for job in jobs[1:]]).update(decision="unsure")
    get_user_model().objects.create_superuser("curator", "c@example.com", "a-long-test-password")
    ARTIFACTS.mkdir(exist_ok=True)
    with web_server(media_root, ml_cache_root, {}) as base, chromium() as browser:
        page = browser.new_page(viewport=LAPTOP)
        admin_logged_in(page, base, username="curator", password="a-long-test-password",
                        then=f"/admin/classifier/reviewitem/?dataset={trained.slug}")
        cards = page.locator(".review-card")
        expect(cards).to_have_count(101)
        assert cards.first.get_attribute("data-job") == str(wrong.pk)
        expect(cards.first).to_contain_text("marked wrong")
        page.wait_for_load_state("networkidle")  # the thumbnails in view
        page.screenshot(path=str(ARTIFACTS / "review-grid-1366.png"))
        page.evaluate("window.notReloaded = true")
        order = page.eval_on_selector_all(".review-card", "cards => cards.map((card) => card.dataset.job)")

        # the dataset's labels in order: 1 coffee, 2 not_coffee; x skips
        keys = ["2" if i % 3 else "1" for i in range(100)]
        started = time.perf_counter()
        for key in keys:
            page.keyboard.press(key)
        expect(page.locator("#review-status")).to_have_text("100 labelled, 0 skipped, 1 left.", timeout=60_000)
        seconds = time.perf_counter() - started
        page.keyboard.press("x")
        expect(page.locator("#review-status")).to_have_text("100 labelled, 1 skipped, 0 left.")
        assert page.evaluate("window.notReloaded") is True
        print(f"\n100 photos labelled with the keyboard in {seconds:.1f} s, no page reload")
        page.screenshot(path=str(ARTIFACTS / "review-grid-labelled-1366.png"))
        page.set_viewport_size(PHONE)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(ARTIFACTS / "review-grid-390.png"))
        page.reload()
        expect(page.locator("#review-done")).to_be_visible()  # labelled and skipped photos are gone

    names = {"1": "coffee", "2": "not_coffee"}
    by_job = {job_id: names[key] for job_id, key in zip(order, keys, strict=False)}
    reviewed = dict(PredictionJob.objects.filter(review_label__isnull=False).values_list("pk", "review_label__name"))
    assert {str(pk): name for pk, name in reviewed.items()} == by_job
    images = DatasetImage.objects.filter(dataset=trained, source=DatasetImage.Source.REVIEW)
    assert images.count() == 100
    assert sorted(images.values_list("label__name", flat=True)) == sorted(by_job.values())


def test_a_candidate_reports_the_field_photos_it_would_fix_and_break_from_real_answers(
    trained, start_qcluster, demo_photos
):
    """Version 2 learns the labels swapped, so the two versions disagree on real photos. A photo
    whose true label is version 1's answer is one version 2 would break; one whose true label is
    version 2's answer, one it would fix. Both versions' answers come from their models."""
    start_qcluster()
    active = trained.model_versions.get(is_active=True)
    coffee, not_coffee = trained.labels.get(name="coffee"), trained.labels.get(name="not_coffee")
    images = trained.images.all()
    coffee_ids = list(images.filter(label=coffee).values_list("pk", flat=True))
    images.filter(label=not_coffee).update(label=coffee)
    images.filter(pk__in=coffee_ids).update(label=not_coffee)
    call_command("train", "--dataset", trained.slug, "--backbone", "mobilenet_025", "--no-progress",
                 stdout=io.StringIO())
    candidate = trained.model_versions.get(number=2, status="ready")
    swapped = Predictor(artifact_path(version=candidate))

    jobs = answered(trained, [path.read_bytes() for path in demo_photos["coffee"][3::7][:4]
                              + demo_photos["not_coffee"][3::7][:4]])
    disagreements = [job for job in jobs if swapped.predict(file_read(file=job.image)).label != job.label]
    assert len(disagreements) >= 2, "the swapped version agreed with the active one on almost every photo"
    broken, fixed = disagreements[:2]
    assert broken.model_version == active
    prediction_feedback_give(job=broken, correct=True)  # version 1 was right: version 2 would break it
    prediction_feedback_give(job=fixed, correct=False, label_name=other_label(fixed))  # version 2 is right
    field_set_score(scoring_id=FieldScoring.objects.get(dataset=trained, status="queued").pk)

    page = curator_client().get(reverse("admin:classifier_modelversion_change", args=[candidate.pk]))
    report = {field_set.name: field_set for field_set in page.context["candidate"].sets}["field set"]
    assert [item["job_id"] for item in report.fixed] == [str(fixed.pk)]
    assert [item["job_id"] for item in report.broken] == [str(broken.pk)]
    html = page.content.decode()
    assert "Field set: it would fix 1" in html and "Field set: it would break 1" in html
    for job in (fixed, broken):
        assert reverse("admin:classifier_reviewitem_thumbnail", args=[job.pk]) in html
