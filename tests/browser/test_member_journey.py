"""A member's journey in a real browser, with and without JavaScript, by mouse and keyboard,
in English and Chinese: register, sign in with the mailed code, change consents, read the
history and a receipt. axe-core checks every page and every htmx swap (see conftest.py)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from flask_babel import force_locale, gettext
from playwright.sync_api import Page
from playwright.sync_api import expect as pw_expect
from sqlalchemy import func, select

from consent_center.domain import Locale
from consent_center.extensions import db
from consent_center.models import Member

pytestmark = pytest.mark.browser

NEW_EMAIL = "ada@example.org"
CARD_NUMBER = "4111 1111 1111 1111"  # a test Visa number: passes the Luhn check
CJK = re.compile(r"[\u3400-\u9fff]")


def path_of(page: Page) -> str:
    return urlsplit(page.url).path


def submit(page: Page, button: str = "main form button[type=submit]") -> None:
    """Press a form's submit button (or follow a link) and wait for the page that answers."""
    with page.expect_navigation():
        page.locator(button).click()


def fill_registration(page: Page, name="Ada Lovelace", email=NEW_EMAIL, birth="1990-12-10"):
    page.fill("#name", name)
    page.fill("#email", email)
    page.fill("#birth_date", birth)


def register_and_sign_in(page: Page, visit, axe_check, live_server) -> None:
    """Register, read the code from the dev mailbox, enter it: lands on /me."""
    visit(page, "/register")
    fill_registration(page)
    submit(page)
    assert path_of(page) == "/sign-in/code"
    axe_check(page)
    page.fill("#code", live_server.sign_in_code(NEW_EMAIL))
    submit(page)
    assert path_of(page) == "/me"
    axe_check(page)
    pw_expect(page.locator("h1")).to_have_text("What we hold about you")
    pw_expect(page.locator("main")).to_contain_text("Hello Ada Lovelace.")


def member_count(live_server) -> int:
    return live_server.query(lambda: db.session.scalar(select(func.count()).select_from(Member)))


def assert_history_and_receipt(page: Page, visit, axe_check, how: str) -> None:
    """History lists withdrawn (newest) then given, both for advertising; open the newest."""
    visit(page, "/me/history")
    rows = page.locator("table.data-table tbody tr")
    pw_expect(rows).to_have_count(2)
    for row, change in zip((rows.nth(0), rows.nth(1)), ("Withdrawn", "Given"), strict=True):
        cells = row.locator("td")
        pw_expect(cells.nth(1)).to_have_text("Advertising planning")
        pw_expect(cells.nth(2)).to_have_text(change)
        pw_expect(cells.nth(3)).to_have_text("You")
        pw_expect(cells.nth(4)).to_have_text(how)
    newest = rows.nth(0).get_by_role("link", name=re.compile(r"^View receipt "))
    receipt_id = newest.get_attribute("href").rsplit("/", 1)[1]
    submit(page, button=f"a[href$='/me/receipts/{receipt_id}']")
    assert path_of(page) == f"/me/receipts/{receipt_id}"
    axe_check(page)
    pw_expect(page.locator("h1")).to_have_text("Consent receipt")
    receipt = page.locator("dl.receipt")
    pw_expect(receipt.locator("code").first).to_have_text(receipt_id)
    pw_expect(receipt).to_contain_text("Advertising planning")
    pw_expect(receipt).to_contain_text("Consent withdrawn")
    pw_expect(receipt).to_contain_text(how)
    pw_expect(receipt.get_by_role("link", name="Version 1")).to_be_visible()


# --------------------------------------------------------------------------------------
# the journey


def toggle_in_place(page: Page, axe_check, purpose: str, title: str, now_on: bool, press=None):
    """Toggle one switch with htmx and prove it happened in place: same URL, same window."""
    switch = page.locator(f"#consent-{purpose}-switch")
    pw_expect(switch).to_have_attribute("aria-checked", "false" if now_on else "true")
    page.evaluate("() => { window.__sameDocument = 'still here' }")
    before = page.url
    with page.expect_response(lambda r: urlsplit(r.url).path == f"/me/consents/{purpose}") as info:
        press() if press else switch.click()
    response = info.value
    assert response.request.headers.get("hx-request") == "true"
    assert response.status == 200
    assert "<html" not in response.text()  # a fragment, not a page
    pw_expect(switch).to_have_attribute("aria-checked", "true" if now_on else "false")
    pw_expect(switch).to_have_accessible_name(f"{title} {'On' if now_on else 'Off'}")
    status = page.locator("#status")
    pw_expect(status).to_have_text(
        re.compile(rf"^{title} is now {'on' if now_on else 'off'}\. View the receipt$")
    )
    pw_expect(status).to_have_attribute("role", "status")  # the live region itself survives
    pw_expect(page.locator(f"#consent-{purpose}")).to_have_count(1)  # swapped, not nested
    assert page.url == before
    assert page.evaluate("() => window.__sameDocument") == "still here"
    axe_check(page, within=[f"#consent-{purpose}", "#status"])


def test_journey_with_javascript(page, visit, axe_check, live_server):
    """Register, sign in, advertising on then off in place (htmx), history, receipt."""
    htmx_loads = []
    page.on("request", lambda r: htmx_loads.append(r.url) if "htmx" in r.url else None)
    register_and_sign_in(page, visit, axe_check, live_server)
    assert htmx_loads and all(
        urlsplit(u).path.startswith("/static/vendor/htmx/") for u in htmx_loads
    ), htmx_loads
    assert page.evaluate("() => htmx.version").startswith("4.")

    toggle_in_place(page, axe_check, "advertising", "Advertising planning", now_on=True)
    toggle_in_place(page, axe_check, "advertising", "Advertising planning", now_on=False)
    pw_expect(page.locator("#consent-trend_analysis-switch")).to_have_attribute(
        "aria-checked", "false"
    )
    assert_history_and_receipt(page, visit, axe_check, how="Web page switch")


def test_journey_without_javascript(nojs_page, visit, axe_check, live_server):
    """The same journey as plain forms: each toggle posts, gets a 303, and lands on /me."""
    page = nojs_page
    register_and_sign_in(page, visit, axe_check, live_server)
    switch = page.locator("#consent-advertising-switch")
    for now_on in (True, False):
        with page.expect_response(
            lambda r: urlsplit(r.url).path == "/me/consents/advertising"
        ) as info:
            submit(page, "#consent-advertising-switch")
        assert info.value.status == 303
        assert info.value.headers["location"].endswith("/me#consent-advertising")
        assert path_of(page) == "/me"
        axe_check(page)
        pw_expect(switch).to_have_attribute("aria-checked", "true" if now_on else "false")
        pw_expect(page.locator("#status")).to_contain_text(
            f"Advertising planning is now {'on' if now_on else 'off'}."
        )
        pw_expect(
            page.locator("#status").get_by_role("link", name="View the receipt")
        ).to_be_visible()
    assert_history_and_receipt(page, visit, axe_check, how="Web form")


def test_switches_work_from_the_keyboard(page, axe_check, sign_in):
    """Space and Enter toggle a focused switch; focus stays on it after the htmx swap."""
    sign_in(page)
    trend = page.locator("#consent-trend_analysis-switch")
    trend.focus()
    toggle_in_place(
        page,
        axe_check,
        "trend_analysis",
        "Trend analysis",
        now_on=True,
        press=lambda: page.keyboard.press("Space"),
    )
    pw_expect(trend).to_be_focused()

    page.keyboard.press("Tab")  # the next thing to focus is the advertising switch
    advertising = page.locator("#consent-advertising-switch")
    pw_expect(advertising).to_be_focused()
    toggle_in_place(
        page,
        axe_check,
        "advertising",
        "Advertising planning",
        now_on=True,
        press=lambda: page.keyboard.press("Enter"),
    )
    pw_expect(advertising).to_be_focused()
    toggle_in_place(
        page,
        axe_check,
        "advertising",
        "Advertising planning",
        now_on=False,
        press=lambda: page.keyboard.press("Space"),
    )
    pw_expect(advertising).to_be_focused()


# --------------------------------------------------------------------------------------
# bad input


def assert_field_error(page: Page, field: str, message: str, timeout: float | None = None):
    """The message sits beside the field, is tied to it, and said once: the summary names
    the field and links to it."""
    pw_expect(page.locator(f"#{field}-error")).to_contain_text(message, timeout=timeout)
    control = page.locator(f"#{field}")
    pw_expect(control).to_have_attribute("aria-invalid", "true", timeout=timeout)
    pw_expect(control).to_have_attribute(
        "aria-describedby", re.compile(rf"\b{field}-error\b"), timeout=timeout
    )
    summary = page.locator(".error-summary")
    pw_expect(summary).to_have_attribute("role", "alert", timeout=timeout)
    pw_expect(summary.locator(f"a[href='#{field}']")).not_to_have_count(0, timeout=timeout)
    pw_expect(summary).not_to_contain_text(message, timeout=timeout)
    assert page.locator("main").inner_text().count(message) == 1, message


def test_registration_rejects_an_empty_name(
    page, visit, axe_check, live_server, allow_console_error
):
    visit(page, "/register")
    fill_registration(page, name="   ")
    allow_console_error(page, r"status of 422 ")
    submit(page)
    assert path_of(page) == "/register"
    axe_check(page)
    assert_field_error(page, "name", "Tell us your name.")
    assert member_count(live_server) == 2  # the seeded demo member and staff only
    assert live_server.messages(NEW_EMAIL) == []


def test_registration_rejects_an_invalid_email(
    page, visit, axe_check, live_server, allow_console_error
):
    visit(page, "/register")
    fill_registration(page, email="not-an-email")
    allow_console_error(page, r"status of 422 ")
    submit(page)
    axe_check(page)
    assert_field_error(page, "email", "Enter a valid email address.")
    pw_expect(page.locator("#name")).not_to_have_attribute("aria-invalid", "true")
    assert member_count(live_server) == 2
    assert live_server.messages("not-an-email") == []


def test_registration_refuses_a_card_number_in_the_name(
    page, visit, axe_check, live_server, allow_console_error
):
    visit(page, "/register")
    fill_registration(page, name=f"Ada {CARD_NUMBER}")
    allow_console_error(page, r"status of 422 ")
    submit(page)
    axe_check(page)
    assert_field_error(page, "name", "This looks like a payment card number.")
    assert member_count(live_server) == 2
    assert live_server.messages(NEW_EMAIL) == []


def test_registration_reports_every_bad_field_at_once(
    page, visit, axe_check, live_server, allow_console_error
):
    visit(page, "/register")
    fill_registration(page, name="", email="not-an-email")
    allow_console_error(page, r"status of 422 ")
    submit(page)
    axe_check(page)
    # Both from the one answer: read from the page as it stands, without waiting for more.
    assert page.evaluate(
        "() => ['name-error', 'email-error'].every(id => document.getElementById(id))"
    )
    assert_field_error(page, "name", "Tell us your name.")
    assert_field_error(page, "email", "Enter a valid email address.")
    assert member_count(live_server) == 2


def test_a_wrong_code_is_refused_and_the_right_one_then_works(
    page, visit, axe_check, live_server, allow_console_error
):
    visit(page, "/sign-in")
    page.fill("#identifier", "member@example.com")
    submit(page)
    assert path_of(page) == "/sign-in/code"
    axe_check(page)
    code = live_server.sign_in_code("member@example.com")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    page.fill("#code", wrong)
    allow_console_error(page, r"status of 422 ")
    submit(page)
    assert path_of(page) == "/sign-in/code"
    axe_check(page)
    assert_field_error(page, "code", "That code is not right.")
    pw_expect(page.get_by_role("link", name="My data")).to_have_count(0)  # not signed in
    page.fill("#code", code)
    submit(page)
    assert path_of(page) == "/me"
    axe_check(page)


# --------------------------------------------------------------------------------------
# languages

PUBLIC_PAGES = {
    # path: (where the page names itself, the English text, its format arguments)
    "/policy": ("title", "Privacy policy", {}),
    "/policy/versions/1": ("title", "Version %(n)d", {"n": 1}),
    "/contact": ("h1", "Contact customer service", {}),
    "/sign-in": ("h1", "Sign in", {}),
    "/register": ("h1", "Become a member", {}),
}
MEMBER_PAGES = {
    "/me/profile": ("h1", "Correct my details", {}),
    "/me/history": ("h1", "Consent history", {}),
}


def expected_heading(live_server, locale: str, msgid: str, args: dict) -> str:
    """The heading as the app's own catalogue translates it (English when untranslated)."""
    with live_server.app.test_request_context(), force_locale(locale):
        return gettext(msgid, **args)


def check_language(page: Page, visit, live_server, pages: dict, lang: str, locale: str):
    for path, (where, msgid, args) in pages.items():
        visit(page, path)
        pw_expect(page.locator("html")).to_have_attribute("lang", lang)
        chosen = page.locator("header .language-switcher button[aria-current=true]")
        pw_expect(chosen).to_have_attribute("lang", lang)
        expected = expected_heading(live_server, locale, msgid, args)
        shown = page.title() if where == "title" else page.locator("h1").inner_text()
        if lang != "en":  # every heading is translated: the Chinese one is shown
            assert CJK.search(expected), (path, expected)
        assert shown.startswith(expected), (path, shown)


def switch_language(page: Page, axe_check, label: str, lang: str) -> None:
    """Use the header's language buttons; the same page comes back in that language."""
    before = path_of(page)
    submit(page, f"header .language-switcher button:text-is('{label}')")
    assert path_of(page) == before
    axe_check(page)
    pw_expect(page.locator("html")).to_have_attribute("lang", lang)


def test_pages_in_english_and_chinese(page, visit, axe_check, live_server, sign_in):
    check_language(page, visit, live_server, PUBLIC_PAGES, "en", Locale.EN)
    switch_language(page, axe_check, "简体中文", "zh-Hans")
    check_language(page, visit, live_server, PUBLIC_PAGES, "zh-Hans", Locale.ZH)
    switch_language(page, axe_check, "English", "en")

    sign_in(page)
    check_language(page, visit, live_server, MEMBER_PAGES, "en", Locale.EN)
    switch_language(page, axe_check, "简体中文", "zh-Hans")
    check_language(page, visit, live_server, MEMBER_PAGES, "zh-Hans", Locale.ZH)
    # Signed in, the choice is kept on the account.
    stored = live_server.query(
        lambda: db.session.scalar(select(Member.locale).where(Member.email == "member@example.com"))
    )
    assert stored == Locale.ZH
    switch_language(page, axe_check, "English", "en")


# --------------------------------------------------------------------------------------
# regressions of app bugs these tests found (landmarks, favicon, switch width, errors)


def test_my_data_page_has_unique_landmarks(page, axe_check, sign_in):
    sign_in(page)
    axe_check(page)


def test_browsers_get_a_favicon(page, visit):
    visit(page, "/")
    icons = page.locator("link[rel~=icon]")
    href = icons.first.get_attribute("href") if icons.count() else "/favicon.ico"
    assert href.startswith("data:") or page.request.get(href).ok, href


def test_switch_thumb_stays_inside_its_track(page, axe_check, sign_in):
    sign_in(page)
    switch = page.locator("#consent-trend_analysis-switch")
    switch.click()
    pw_expect(switch).to_have_attribute("aria-checked", "true")
    axe_check(page, within=["#consent-trend_analysis", "#status"])
    page.locator("main").hover(position={"x": 1, "y": 1})  # no hover styles
    track = switch.locator(".switch-track").bounding_box()
    thumb = switch.locator(".switch-thumb").bounding_box()
    rem = page.evaluate("() => parseFloat(getComputedStyle(document.documentElement).fontSize)")
    assert track["width"] == pytest.approx(3.2 * rem, abs=1)
    assert track["x"] <= thumb["x"] and thumb["x"] + thumb["width"] <= track["x"] + track["width"]


def test_a_part_of_my_data_opens_in_place_with_its_every_field(page, nojs_page, axe_check, sign_in):
    """Opening "Every field we keep for this, and why" fetches that part's fields into the
    page (htmx, once); without JavaScript the same list opens on its own page."""
    sign_in(page)
    details = page.locator("#group-notification").locator("xpath=..").locator("details")
    with page.expect_response(lambda r: urlsplit(r.url).path == "/me/data/notification") as info:
        details.locator("summary").click()
    assert info.value.request.headers.get("hx-request") == "true"
    table = details.locator("table.data-table")
    pw_expect(table).to_be_visible()
    pw_expect(table.locator("tbody tr").first).to_be_visible()
    axe_check(page)
    details.locator("summary").click()  # closed and opened again: nothing fetched twice
    fetched = []
    page.on("request", lambda r: fetched.append(r.url) if "/me/data/" in r.url else None)
    details.locator("summary").click()
    pw_expect(table).to_be_visible()
    assert fetched == []

    sign_in(nojs_page)
    fallback = nojs_page.locator("#group-notification").locator("xpath=..").locator("details")
    fallback.locator("summary").click()
    with nojs_page.expect_navigation():
        fallback.get_by_role("link", name="See every field we keep for this, and why").click()
    assert path_of(nojs_page) == "/me/data/notification"
    axe_check(nojs_page)
    pw_expect(nojs_page.locator("table.data-table tbody tr").first).to_be_visible()
