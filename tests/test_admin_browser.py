"""A curator in a real browser: Train on a dataset page with real photos, the progress bar moving
while the training cluster trains, the finished version's report with its curves, activation, a
second training of the same data, the comparison, and the accessibility of the home, version and
comparison pages. Screenshots
of each page at a laptop's and a phone's size go to the test artifacts."""

import os
import time

import pytest
from django.contrib.auth import get_user_model

from classifier.models import ModelVersion
from tests.conftest import ROOT
from tests.servers import web_server

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
BACKBONE = "mobilenet_025"  # the smallest real backbone keeps the test fast
PASSWORD = "a-long-test-password"
SIZES = {"desktop": (1366, 900), "phone": (390, 844)}


def serious_violations(page) -> list:
    from axe_playwright_python.sync_playwright import Axe

    return [(page.url, violation["id"], violation["help"], [node["target"] for node in violation["nodes"]])
            for violation in Axe().run(page).response["violations"] if violation["impact"] in ("serious", "critical")]


def screenshots(page, name: str) -> None:
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(ARTIFACTS / f"admin-{name}-{size}.png"), full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})


def train_from_dataset_page(page, base: str, dataset) -> list[tuple[float, str]]:
    """Click Train on the dataset page, submit the form, and follow the bar until the finished
    version's page shows: what the bar and its sentence said on the way."""
    from playwright.sync_api import Error as PlaywrightError

    page.goto(f"{base}/admin/dataset/dataset/{dataset.pk}/change/")
    page.click("text=Train a new version…")
    page.select_option("#id_backbone", BACKBONE)
    page.fill("#id_epochs", "200")
    page.click("input[type=submit][value=Train]")
    page.wait_for_selector(".training-progress progress")
    seen = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            if page.locator(".activate-form, .version-state .badge-active").count():
                return seen
            bar = page.locator(".training-progress progress")
            if bar.count():
                seen.append((float(bar.get_attribute("value") or 0), page.locator(".training-progress-text").inner_text()))
        except PlaywrightError:  # the page reloads under us when the training ends
            continue
        finally:
            time.sleep(0.3)
    raise AssertionError(f"the training did not finish; the bar said {seen[-3:]}")


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")
def test_a_curator_trains_reads_the_report_activates_and_compares(small_dataset, keras_home, start_qcluster,
                                                                  media_root, ml_cache_root):
    from playwright.sync_api import expect, sync_playwright

    get_user_model().objects.create_superuser("curator", "curator@example.com", PASSWORD)
    start_qcluster("training")
    ARTIFACTS.mkdir(exist_ok=True)
    with web_server(media_root, ml_cache_root, {}) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto(f"{base}/admin/login/")
        page.fill("#id_username", "curator")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")

        seen = train_from_dataset_page(page, base, small_dataset)
        values = [value for value, _ in seen]
        assert len(set(values)) >= 2 and max(values) > min(values), seen  # the bar moved without a reload
        assert any(text.startswith("coffee v1: Step ") and " of 4: " in text for _, text in seen), seen
        expect(page.locator(".version-state strong")).to_have_text("Ready")
        expect(page.locator("h1")).to_have_text("coffee v1")
        expect(page.locator("svg.chart")).to_have_count(3)
        expect(page.locator("#threshold-view")).to_be_visible()
        expect(page.locator(".threshold-table tr.chosen")).to_contain_text("(in use)")
        screenshots(page, "version")
        violations = serious_violations(page)
        page.click("text=Activate this version")
        expect(page.locator(".version-state .badge-active")).to_be_visible()

        train_from_dataset_page(page, base, small_dataset)  # the same photos and settings again
        expect(page.locator(".training-twin")).to_contain_text("Same data and settings as coffee v1")
        page.goto(f"{base}/admin/dataset/dataset/{small_dataset.pk}/change/")
        expect(page.locator(".versions-table tbody tr")).to_have_count(2)
        screenshots(page, "dataset")

        page.goto(f"{base}/admin/classifier/modelversion/")
        expect(page.locator(".badge-active")).to_have_count(1)
        page.check("#action-toggle")
        page.select_option("select[name=action]", "compare_selected")
        page.click("button[name=index]")
        expect(page.locator(".compare-table thead th").last).to_contain_text("difference, coffee v2 against coffee v1")
        expect(page.locator(".compare-table td.difference").first).to_be_attached()
        screenshots(page, "compare")
        violations += serious_violations(page)

        page.goto(f"{base}/admin/")
        expect(page.locator(".workspace-table")).to_contain_text("coffee v1")
        screenshots(page, "home")
        violations += serious_violations(page)
        browser.close()
    assert list(ModelVersion.objects.filter(dataset=small_dataset).values_list("number", "status", "is_active")) == [
        (2, "ready", False), (1, "ready", True)]
    assert not violations, violations
