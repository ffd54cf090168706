"""htmx history in the staff console, in a real browser: a search, the audit filter and the
chart's period push their address; the back button returns to each earlier one (htmx 4
fetches the address again and the server answers the full page); an address loaded
directly shows the same page. axe-core checks every page and every swap (conftest.py)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page
from playwright.sync_api import expect as pw_expect

from consent_center.cli import DEMO_STAFF_EMAIL

pytestmark = pytest.mark.browser


def address(page: Page) -> str:
    return address_of(page.url)


def swapped(page: Page, axe_check, action, target: str) -> None:
    """Do `action`, wait for the htmx answer to be swapped in, then check the swapped part."""
    with page.expect_response(lambda r: r.request.headers.get("hx-request") == "true"):
        action()
    page.wait_for_load_state()
    axe_check(page, within=[target])


def restored(page: Page, axe_check, wanted: str) -> None:
    """Go back one entry and wait until htmx has restored the page of `wanted`."""
    with page.expect_response(lambda r: address_of(r.url) == wanted):
        page.go_back()
    page.wait_for_url(lambda url: address_of(url) == wanted)
    page.locator("main h1").wait_for()
    axe_check(page)


def address_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_back_button_returns_to_searches_and_filters(page, visit, axe_check, sign_in):
    sign_in(page, DEMO_STAFF_EMAIL)

    # Member search: each search pushes its address; back returns to the one before.
    visit(page, "/staff/members")
    search = page.locator("#q")
    results = page.locator("#member-results")
    swapped(page, axe_check, lambda: search.fill("demo member"), "#member-results")
    page.wait_for_url(lambda url: address_of(url) == "/staff/members?q=demo+member")
    pw_expect(results).to_contain_text("Demo Member")
    swapped(page, axe_check, lambda: search.fill("demo staff"), "#member-results")
    page.wait_for_url(lambda url: address_of(url) == "/staff/members?q=demo+staff")
    pw_expect(results).not_to_contain_text("Demo Member")
    restored(page, axe_check, "/staff/members?q=demo+member")
    pw_expect(page.locator("#member-results")).to_contain_text("Demo Member")
    pw_expect(page.locator("#q")).to_have_value("demo member")

    # The consent chart's period.
    visit(page, "/staff")
    title = page.locator("#chart-title")
    pw_expect(title).to_contain_text("last 90 days")
    swapped(page, axe_check, lambda: page.select_option("#days", "7"), "#consent-chart")
    page.wait_for_url(lambda url: address_of(url) == "/staff?days=7")
    pw_expect(title).to_contain_text("last 7 days")
    swapped(page, axe_check, lambda: page.select_option("#days", "365"), "#consent-chart")
    pw_expect(title).to_contain_text("last 365 days")
    restored(page, axe_check, "/staff?days=7")
    pw_expect(page.locator("#chart-title")).to_contain_text("last 7 days")
    pw_expect(page.locator("#days")).to_have_value("7")
    restored(page, axe_check, "/staff")
    pw_expect(page.locator("#chart-title")).to_contain_text("last 90 days")

    # The audit log's filter.
    visit(page, "/staff/audit")
    page.fill("#action", "member.")
    swapped(page, axe_check, lambda: page.click("main form button[type=submit]"), "#audit-results")
    assert "action=member." in address(page)
    filtered = address(page)
    pw_expect(page.locator("#audit-results")).not_to_contain_text("policy.published")
    page.fill("#action", "policy.")
    swapped(page, axe_check, lambda: page.click("main form button[type=submit]"), "#audit-results")
    pw_expect(page.locator("#audit-results")).to_contain_text("policy.published")
    restored(page, axe_check, filtered)
    pw_expect(page.locator("#action")).to_have_value("member.")

    # A pushed address loaded directly is the same full page.
    visit(page, "/staff?days=30")
    pw_expect(page.locator("#chart-title")).to_contain_text("last 30 days")
    visit(page, filtered)
    pw_expect(page.locator("#action")).to_have_value("member.")
