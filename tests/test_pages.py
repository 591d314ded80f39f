"""The pages people read, in a real browser: the upload page with a real model answering through a
real cluster, the prediction job's admin pages, the API docs; and the one way numbers read."""

import json
import re

import pytest
from django.contrib.auth import get_user_model

from classifier import selectors
from classifier.ml.predictor import Predictor
from classifier.models import ModelVersion, PredictionJob
from classifier.templatetags.classifier_format import label_text, milliseconds, percentage
from tests.browser import (
    LAPTOP,
    PHONE,
    admin_logged_in,
    chromium,
    horizontal_overflow,
    needs_chromium,
    screenshots,
    serious_accessibility_violations,
)
from tests.servers import web_server

# values where rounding rules part ways: halves, the edges of 0 and 1, binary fractions
AWKWARD = [0, 1, 0.999995, 0.9995, 0.99949, 0.999874472618103, 0.00001, 0.0005, 0.00049, 0.12345, 0.1225,
           0.97143, 0.5, 0.0625, 0.3333333]
DURATIONS = [0, 0.04, 0.05, 3.21, 9.94, 9.96, 10, 12.5, 999.5, 1234.5, 98765.4]
SHOWN_IMAGES_BROKEN = "[...document.images].filter((img) => img.offsetParent && img.complete && !img.naturalWidth).length"


def test_percentages_say_certain_only_when_they_are():
    assert [percentage(value) for value in (1, 1.0, 0, 0.999995, 0.9995, 0.99949, 0.97143, 0.00001, 0.0005)] == [
        "100 %", "100 %", "0 %", "> 99.9 %", "> 99.9 %", "99.9 %", "97.1 %", "< 0.1 %", "0.1 %"]
    assert percentage(None) == percentage("") == "–"
    assert [milliseconds(value) for value in (3.21, 9.96, 12.5, 1234.5, None)] == [
        "3.2 ms", "10.0 ms", "13 ms", "1 235 ms", "–"]
    assert label_text("not_coffee") == "not coffee"


def photos_either_side_of_trust(version: ModelVersion, demo_photos: dict):
    """(doubtful, sure): two real photos, the version set to trust the sure one's answer and not the other's."""
    predictor = Predictor(selectors.artifact_path(version=version))
    candidates = sorted(demo_photos["coffee"][5:40:5] + demo_photos["not_coffee"][5:40:5],
                        key=lambda path: predictor.predict(path.read_bytes()).confidence)
    doubtful, sure = candidates[0], candidates[-1]
    metadata = selectors.artifact_path(version=version) / "metadata.json"
    metadata.write_text(json.dumps({
        **predictor.metadata, "unsure_below": predictor.predict(sure.read_bytes()).confidence,
    }))
    assert predictor.predict(doubtful.read_bytes()).confidence < predictor.predict(sure.read_bytes()).confidence
    return doubtful, sure


@needs_chromium
def test_a_visitor_and_a_curator_read_answers_in_the_browser(trained, start_qcluster, media_root, ml_cache_root,
                                                            demo_photos):
    from playwright.sync_api import expect

    version = ModelVersion.objects.get(dataset=trained, is_active=True)
    doubtful, sure = photos_either_side_of_trust(version, demo_photos)
    get_user_model().objects.create_superuser("curator", "curator@example.com", "a-long-test-password")
    start_qcluster()
    missing = []
    with web_server(media_root, ml_cache_root, {}) as base, chromium() as browser:
        page = browser.new_page(viewport=LAPTOP)
        page.on("response", lambda response: response.status == 404 and missing.append(response.url))
        page.goto(base + "/")
        expect(page.locator("#model-version")).to_have_text("1")

        # the answer: its label, a bar per label, where the model looked
        page.set_input_files("#image", str(sure))
        expect(page.locator("#answer")).to_be_visible(timeout=30_000)
        label = page.locator("#label").inner_text()
        assert label in ("coffee", "not coffee")
        expect(page.locator("#probabilities tr")).to_have_count(2)
        expect(page.locator("#probabilities meter")).to_have_count(2)
        expect(page.locator("#probabilities tr.answered th")).to_have_text(label)
        page.check("#show-heatmap")
        expect(page.locator("#heatmap")).to_be_visible()
        expect(page.locator("#heatmap-controls canvas[data-heatmap-legend]")).to_be_visible()
        assert not serious_accessibility_violations(page)
        screenshots(page, "upload-answer")

        # "Wrong" files nothing by itself: the right label is asked for, none chosen
        page.click("#wrong")
        choices = page.locator("#label-choices input[type=radio]")
        expect(choices).to_have_count(1)  # two labels: only the one not answered is offered
        assert not page.locator("#label-choices input:checked").count()
        expect(page.locator("#send-label")).to_be_disabled()
        other = choices.first.get_attribute("value")
        assert label_text(other) != label
        choices.first.check()
        page.click("#send-label")
        expect(page.locator("#thanks")).to_contain_text("wrong")
        expect(page.locator("#recent .recent-item[aria-current]")).to_contain_text("you said wrong")
        screenshots(page, "upload-feedback")

        # a file that is no image: a sentence, and no broken photo
        page.set_input_files("#image", {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not a photo"})
        expect(page.locator("#error")).to_contain_text("is not an image")
        expect(page.locator("#result")).to_be_hidden()
        assert page.evaluate(SHOWN_IMAGES_BROKEN) == 0
        screenshots(page, "upload-error")

        page.set_input_files("#image", str(doubtful))
        expect(page.locator("#label")).to_have_text(
            re.compile(r"Not sure: looks a little more like (coffee|not coffee), (\d+\.\d|> 99\.9) %"), timeout=30_000
        )
        unsure_text = page.locator("#label").inner_text()
        expect(page.locator("#recent li").first).to_contain_text("not sure, maybe ")

        # after a reload the recent photos are thumbnails that reopen their answers, feedback and all,
        # in the very words the page wrote before it
        recent = page.locator("#recent .recent-item")
        before = recent.all_inner_texts()
        page.reload()
        expect(recent).to_have_count(2)
        assert recent.all_inner_texts() == before
        page.wait_for_function("[...document.querySelectorAll('#recent img')].every((img) => img.naturalWidth > 0)")
        expect(recent.last).to_contain_text("you said wrong")
        recent.last.click()
        answered_id = recent.last.get_attribute("data-job")
        visitor_session = next(c["value"] for c in page.context.cookies() if c["name"] == "sessionid")
        expect(page.locator("#label")).to_have_text(label)
        expect(page.locator("#probabilities meter")).to_have_count(2)
        expect(page.locator("#thanks")).to_contain_text("wrong")
        expect(page.locator("#preview")).to_be_visible()
        screenshots(page, "upload-reopened")
        page.set_viewport_size(PHONE)
        assert horizontal_overflow(page) <= 0
        page.set_viewport_size(LAPTOP)

        # keyboard users see where they are
        page.focus("#image")
        assert page.eval_on_selector("#drop", "drop => getComputedStyle(drop).outlineStyle") != "none"

        # the page formats numbers as the admin does, to the last digit
        assert page.evaluate("values => values.map(Format.percent)", AWKWARD) == [percentage(v) for v in AWKWARD]
        assert page.evaluate("values => values.map(Format.milliseconds)", DURATIONS) == [
            milliseconds(v) for v in DURATIONS]

        # the curator's side, in a browser of their own
        page = browser.new_page(viewport=LAPTOP)
        page.on("response", lambda response: response.status == 404 and missing.append(response.url))
        admin_logged_in(page, base, username="curator", password="a-long-test-password")
        page.goto(f"{base}/admin/classifier/predictionjob/{answered_id}/change/")
        page.wait_for_function("document.querySelector('.job-photo img').naturalWidth > 0")
        expect(page.locator(".job-heatmap")).to_be_visible()
        expect(page.locator(".job-probabilities meter")).to_have_count(2)
        expect(page.locator(".job-timings td")).to_have_count(4)
        for timing in page.locator(".job-timings td").all_inner_texts():
            assert re.fullmatch(r"\d{1,3}( \d{3})* ms|\d\.\d ms", timing), timing
        expect(page.locator(".job-feedback")).to_contain_text(f"it is {label_text(other)}")
        assert visitor_session not in page.content()
        visible = page.locator("body").inner_text()
        assert not re.search(r"\d\.\d{3,}|\[\[", visible), "a raw number or array is shown"
        assert not serious_accessibility_violations(page)
        screenshots(page, "admin-prediction-job")

        page.goto(f"{base}/admin/classifier/predictionjob/")
        expect(page.locator("#result_list tbody tr")).to_have_count(2)
        assert horizontal_overflow(page) <= 0
        screenshots(page, "admin-prediction-jobs")

        # the API docs come from this site: Swagger UI lists the operations without the internet
        page.goto(f"{base}/api/v1/docs")
        page.wait_for_selector(".opblock", timeout=15_000)
        assert page.locator(".opblock").count() >= 4
        expect(page.locator(".opblock-summary-description").first).to_have_text("Send a photo")
        screenshots(page, "api-docs")
    assert not missing, missing  # the favicon too

    answered = PredictionJob.objects.get(decision="answered")
    assert str(answered.pk) == answered_id and answered.session_key == visitor_session
    assert (answered.feedback, answered.feedback_label.name) == ("wrong", other)
    assert label == label_text(answered.label)
    unsure = PredictionJob.objects.get(decision="unsure")
    assert unsure_text == f"Not sure: looks a little more like {label_text(unsure.label)}, {percentage(unsure.confidence)}"
    assert PredictionJob.objects.count() == 2  # the refused file left no job


@pytest.mark.django_db
def test_the_job_page_shows_no_session_key_even_for_a_failed_job(staff_client, dataset):
    job = PredictionJob.objects.create(dataset=dataset, image="predictions/gone.jpg", image_format="jpeg",
                                       status=PredictionJob.Status.FAILED, error="FileNotFoundError: gone",
                                       session_key="k3y0fs0me0ne5s3ss10n")
    html = staff_client.get(f"/admin/classifier/predictionjob/{job.pk}/change/").content.decode()
    assert "FileNotFoundError: gone" in html and job.session_key not in html
