"""Screenshots: the README's (the member's page in English and Chinese, on a desk and on a
phone, and a policy version) into docs/screenshots, and every staff page at 375 px and
1280 px in both languages into test-results/screenshots (member, guardian and public pages
are shot there by test_pages.py in the same run).

They rewrite tracked files, so they are not part of a test run: `make screenshots`
(`UPDATE_SCREENSHOTS=1`, see tests/browser/conftest.py) refreshes them on purpose.
SQLite only: the pictures do not depend on the database.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page
from playwright.sync_api import expect as pw_expect

from tests.browser.test_pages import LANGUAGES, STAFF_SHOTS, _open, _shoot, walker, world

__all__ = ["walker", "world"]  # fixtures of test_pages.py, used here

pytestmark = [pytest.mark.browser, pytest.mark.screenshots]

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PHONE_SCREEN = {"width": 375, "height": 812}


def shoot(page: Page, name: str, full_page: bool = True) -> None:
    """A PNG (of the whole page, or of the screen), once web fonts (and CJK fallbacks) are
    ready and nothing moves."""
    page.evaluate("async () => { await document.fonts.ready }")
    page.screenshot(path=SHOTS / name, full_page=full_page, animations="disabled", caret="hide")


def switch_language(page: Page, axe_check, label: str, lang: str) -> None:
    with page.expect_navigation():
        page.locator(f"header .language-switcher button:text-is('{label}')").click()
    axe_check(page)
    pw_expect(page.locator("html")).to_have_attribute("lang", lang)


@pytest.mark.parametrize("_live_server", ["sqlite"], indirect=True)
def test_screenshots(page, visit, axe_check, sign_in):
    SHOTS.mkdir(parents=True, exist_ok=True)
    sign_in(page)
    trend = page.locator("#consent-trend_analysis-switch")
    trend.click()
    pw_expect(trend).to_have_attribute("aria-checked", "true")
    axe_check(page, within=["#consent-trend_analysis", "#status"])
    visit(page, "/me")  # without the one-off "now on" notice
    pw_expect(trend).to_have_attribute("aria-checked", "true")
    shoot(page, "me-en.png")

    switch_language(page, axe_check, "简体中文", "zh-Hans")
    shoot(page, "me-zh.png")
    switch_language(page, axe_check, "English", "en")

    visit(page, "/policy/versions/1")
    shoot(page, "policy-en.png")

    # A phone's first screen (the whole page is a long scroll).
    page.set_viewport_size(PHONE_SCREEN)
    visit(page, "/me")
    shoot(page, "me-phone-en.png", full_page=False)
    visit(page, "/me/history")
    shoot(page, "history-phone-en.png", full_page=False)
    switch_language(page, axe_check, "简体中文", "zh-Hans")
    shoot(page, "history-phone-zh.png", full_page=False)
    visit(page, "/me")
    shoot(page, "me-phone-zh.png", full_page=False)
    for name in ("me-en.png", "me-zh.png", "policy-en.png", "me-phone-en.png", "me-phone-zh.png"):
        assert (SHOTS / name).stat().st_size > 10_000, name


@pytest.mark.parametrize("_live_server", ["sqlite"], indirect=True)
@pytest.mark.parametrize("lang", list(LANGUAGES))
@pytest.mark.parametrize("name", list(STAFF_SHOTS))
def test_staff_page_screenshots(walker, world, name, lang):
    """Every staff page, axe-clean, in pictures at both widths."""
    _shoot(_open(walker, world, STAFF_SHOTS[name], lang), name, lang)
