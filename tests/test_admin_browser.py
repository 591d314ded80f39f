"""A curator in a real browser: Train on a dataset page with real photos, the progress bar moving
while the training cluster trains, the finished version's report with its curves, activation, a
second training of the same data, the comparison, and the accessibility of the home, version and
comparison pages. Screenshots
of each page at a laptop's and a phone's size go to the test artifacts."""

import time

from django.contrib.auth import get_user_model

from classifier.models import ModelVersion
from tests.browser import (
    LAPTOP,
    admin_logged_in,
    chromium,
    needs_chromium,
    screenshots,
    serious_accessibility_violations,
)
from tests.servers import web_server

BACKBONE = "mobilenet_025"  # the smallest real backbone keeps the test fast
PASSWORD = "a-long-test-password"


def train_from_dataset_page(page, base: str, dataset) -> list[tuple[float, str]]:
    """Click Train on the dataset page, submit the form, and follow the bar until the finished
    version's page shows: what the bar and its sentence said on the way."""
    from playwright.sync_api import Error as PlaywrightError

    page.goto(f"{base}/admin/dataset/dataset/{dataset.pk}/change/")
    page.click("text=Train a new version…")
    page.select_option("#id_backbone", BACKBONE)
    page.fill("#id_epochs", "20000")  # a head stage long enough for the bar to be seen moving
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


@needs_chromium
def test_a_curator_trains_reads_the_report_activates_and_compares(small_dataset, keras_home, start_qcluster,
                                                                  media_root, ml_cache_root):
    from playwright.sync_api import expect

    get_user_model().objects.create_superuser("curator", "curator@example.com", PASSWORD)
    start_qcluster("training")
    with web_server(media_root, ml_cache_root, {}) as base, chromium() as browser:
        page = browser.new_page(viewport=LAPTOP)
        admin_logged_in(page, base, username="curator", password=PASSWORD)

        seen = train_from_dataset_page(page, base, small_dataset)
        values = [value for value, _ in seen]
        assert len(set(values)) >= 2 and max(values) > min(values), seen  # the bar moved without a reload
        assert any(" 2 of 4: head" in text for _, text in seen), seen
        assert any(text.startswith("coffee v1: Step ") and " of 4: " in text for _, text in seen), seen
        expect(page.locator(".version-state strong")).to_have_text("Ready")
        expect(page.locator("h1")).to_have_text("coffee v1")
        expect(page.locator("svg.chart")).to_have_count(3)
        expect(page.locator("#threshold-view")).to_be_visible()
        expect(page.locator(".threshold-table tr.chosen")).to_contain_text("(in use)")
        screenshots(page, "admin-version")
        violations = serious_accessibility_violations(page)
        page.click("text=Activate this version")
        expect(page.locator(".version-state .badge-active")).to_be_visible()

        train_from_dataset_page(page, base, small_dataset)  # the same photos and settings again
        expect(page.locator(".training-twin")).to_contain_text("Same data and settings as coffee v1")
        page.goto(f"{base}/admin/dataset/dataset/{small_dataset.pk}/change/")
        expect(page.locator(".versions-table tbody tr")).to_have_count(2)
        screenshots(page, "admin-dataset")

        page.goto(f"{base}/admin/classifier/modelversion/")
        expect(page.locator(".badge-active")).to_have_count(1)
        page.check("#action-toggle")
        page.select_option("select[name=action]", "compare_selected")
        page.click("button[name=index]")
        expect(page.locator(".compare-table thead th").last).to_contain_text("difference, coffee v2 against coffee v1")
        expect(page.locator(".compare-table td.difference").first).to_be_attached()
        screenshots(page, "admin-compare")
        violations += serious_accessibility_violations(page)

        page.goto(f"{base}/admin/")
        expect(page.locator(".workspace-table")).to_contain_text("coffee v1")
        screenshots(page, "admin-home")
        violations += serious_accessibility_violations(page)
    assert list(ModelVersion.objects.filter(dataset=small_dataset).values_list("number", "status", "is_active")) == [
        (2, "ready", False), (1, "ready", True)]
    assert not violations, violations
