"""Screenshots for the docs: the member's page in English and Chinese, and a policy version.

They rewrite tracked files, so they are not part of a test run: `make screenshots`
(`UPDATE_SCREENSHOTS=1`, see tests/browser/conftest.py) refreshes them on purpose.
SQLite only: the pictures do not depend on the database.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page
from playwright.sync_api import expect as pw_expect

pytestmark = [pytest.mark.browser, pytest.mark.screenshots]

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def shoot(page: Page, name: str) -> None:
    """A full-page PNG, once web fonts (and CJK fallbacks) are ready and nothing moves."""
    page.evaluate("async () => { await document.fonts.ready }")
    page.screenshot(path=SHOTS / name, full_page=True, animations="disabled", caret="hide")


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
    for name in ("me-en.png", "me-zh.png", "policy-en.png"):
        assert (SHOTS / name).stat().st_size > 10_000, name
