"""A real browser for the tests that look at pages: Debian's Chromium driven by Playwright, the
screenshots they leave behind, and axe's accessibility audit."""

import contextlib
import os

import pytest

from tests.conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
# what axe may find on a page: nothing worse than "moderate"
BLOCKING_IMPACTS = ("serious", "critical")

needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                    reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")


@contextlib.contextmanager
def chromium():
    """A Chromium that asks nothing of the internet."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update"],
        )
        try:
            yield browser
        finally:
            browser.close()


def admin_logged_in(page, base: str, *, username: str, password: str, then: str = "") -> None:
    """Log `page` into the admin through its login form, then go to `then` (a path), if given."""
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    if then:
        page.goto(f"{base}{then}")


def screenshots(page, name: str) -> None:
    """The page as it is, full length, at a laptop's and a phone's width, in test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    size = page.viewport_size
    for label, viewport in (("1366", LAPTOP), ("390", PHONE)):
        page.set_viewport_size(viewport)
        page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(size)


def serious_accessibility_violations(page) -> list[str]:
    """axe's violations on the page with impact serious or critical, one line each."""
    from axe_playwright_python.sync_playwright import Axe

    violations = Axe().run(page).response["violations"]
    return [f"{item['id']} ({item['impact']}): {item['help']} at {[node['target'] for node in item['nodes']]}"
            for item in violations if item["impact"] in BLOCKING_IMPACTS]


def horizontal_overflow(page) -> int:
    """How many CSS pixels the page is wider than the window (0 when it fits)."""
    return page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")

