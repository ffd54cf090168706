"""Deletion and guardianship in a real browser, with email over real SMTP.

- A member asks for deletion, staff refuse on a ground, the member sees it; a second member
  asks, staff complete, that member can no longer sign in and the SMTP server received the
  completion notice.
- A minor registers, the guardian's email arrives, the guardian verifies and approves, the
  minor signs in to an active account; the guardian turns trend analysis on and the minor's
  history shows the guardian as the one who did it.

axe-core checks every page and htmx swap (see conftest.py).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page
from playwright.sync_api import expect as pw_expect

from consent_center.cli import DEMO_MEMBER_EMAIL, DEMO_STAFF_EMAIL
from consent_center.extensions import db
from consent_center.models import Member
from consent_center.notify.worker import drain

pytestmark = pytest.mark.browser

EXPLANATION = "Your account is part of an open police investigation (case 2026-114)."


def mail_to(sink, to: str, subject_part: str):
    found = [
        m.message
        for m in sink.messages
        if m.rcpt_tos == [to] and subject_part.lower() in m.message["Subject"].lower()
    ]
    assert found, [(m.rcpt_tos, m.message["Subject"]) for m in sink.messages]
    return found[-1]


def code_in(message) -> str:
    return re.search(r"\b(\d{6})\b", message.get_body(("plain",)).get_content()).group(1)


def click_and_wait(page: Page, selector: str) -> None:
    with page.expect_navigation():
        page.locator(selector).first.click()


def path_of(page: Page) -> str:
    return urlsplit(page.url).path


def ask_for_deletion(page: Page, visit, axe_check, sink, email: str) -> None:
    visit(page, "/me/delete")
    click_and_wait(page, "button:has-text('Send me a confirmation code')")
    axe_check(page)
    page.fill("#code", code_in(mail_to(sink, email, "confirmation code")))
    page.fill("#reason", "I no longer use the service.")
    page.check("#confirm")
    click_and_wait(page, "button:has-text('Ask us to delete my data')")
    assert path_of(page).startswith("/me/deletion/")
    axe_check(page)
    pw_expect(page.locator("main")).to_contain_text("Received")


def open_newest_request(staff: Page, visit, axe_check) -> None:
    visit(staff, "/staff/deletions")
    click_and_wait(staff, "main table a[href^='/staff/deletions/']")
    axe_check(staff)


def test_deletion_refused_then_another_completed(
    browsing, visit, axe_check, live_server, sign_in, live_smtp
):
    member = browsing.new_page()
    sign_in(member, DEMO_MEMBER_EMAIL)
    ask_for_deletion(member, visit, axe_check, live_smtp, DEMO_MEMBER_EMAIL)
    status_path = path_of(member)

    staff = browsing.new_page()
    sign_in(staff, DEMO_STAFF_EMAIL)
    open_newest_request(staff, visit, axe_check)
    staff.check("input[name=ground][value=criminal_justice]")
    staff.fill("#explanation", EXPLANATION)
    click_and_wait(staff, "button:has-text('Refuse the request')")
    axe_check(staff)

    visit(member, status_path)
    main = member.locator("main")
    pw_expect(main).to_contain_text("Refused")
    pw_expect(main).to_contain_text("criminal investigation")
    pw_expect(main).to_contain_text(EXPLANATION)
    pw_expect(main).to_contain_text("aftersale@autooltech.com")

    # A second member asks, and staff complete the request.
    second_email = "second.member@example.org"
    live_server.query(
        lambda: (
            db.session.add(
                Member(
                    name="Second Member",
                    email=second_email,
                    # Signing in verifies the address; the shortcut below skips the code.
                    email_verified_at=datetime.now(UTC),
                    birth_date=date(1991, 2, 3),
                    locale="en",
                    policy_seen_number=1,
                )
            ),
            db.session.commit(),
        )
    )
    second = browsing.new_page()
    sign_in(second, second_email)
    ask_for_deletion(second, visit, axe_check, live_smtp, second_email)
    open_newest_request(staff, visit, axe_check)
    pw_expect(staff.locator("main")).to_contain_text("Second Member")
    staff.check("#confirm")
    click_and_wait(staff, "button:has-text('Erase now')")
    axe_check(staff)
    pw_expect(staff.locator("main")).to_contain_text("erased")

    live_server.query(drain)
    notice = mail_to(live_smtp, second_email, "erased")
    assert "can no longer sign in" in notice.get_body(("plain",)).get_content()

    # The erased member's session is over, and signing in again sends no code.
    visit(second, "/me")
    assert path_of(second) == "/sign-in"
    second.fill("#identifier", second_email)
    click_and_wait(second, "main button[type=submit]")
    assert path_of(second) == "/sign-in/code"
    axe_check(second)
    codes = [
        m
        for m in live_smtp.messages
        if m.rcpt_tos == [second_email] and "sign-in code" in m.message["Subject"].lower()
    ]
    assert codes == []


def test_guardian_approves_then_oversees(browsing, visit, axe_check, live_server, live_smtp):
    minor_email, guardian_email = "little.lee@example.org", "parent.lee@example.org"
    today = date.today()
    minor = browsing.new_page()
    visit(minor, "/register")
    minor.fill("#name", "Little Lee")
    minor.fill("#email", minor_email)
    minor.fill("#birth_date", date(today.year - 10, 1, 1).isoformat())  # ten, even on 29 Feb
    minor.fill("#guardian_contact", guardian_email)
    click_and_wait(minor, "button:has-text('Register and send my code')")
    assert path_of(minor) == "/sign-in/code"
    axe_check(minor)

    # The guardian's email arrived over SMTP with a single-use link.
    invite = mail_to(live_smtp, guardian_email, "approve")
    link = re.search(r"https?://\S+/g/[\w-]+", invite.get_body(("plain",)).get_content()).group(0)
    guardian = browsing.new_page()
    visit(guardian, urlsplit(link).path)
    assert path_of(guardian).startswith("/guardian/invite/")
    click_and_wait(guardian, "button:has-text('Send me a code')")
    axe_check(guardian)
    guardian.fill("#code", code_in(mail_to(live_smtp, guardian_email, "guardian code")))
    click_and_wait(guardian, "button:has-text('Confirm')")
    assert path_of(guardian).endswith("/decide")
    axe_check(guardian)
    pw_expect(guardian.locator("main")).to_contain_text(minor_email)
    guardian.fill("#guardian_name", "Parent Lee")
    guardian.fill("#guardian_birth_date", "1980-05-01")
    click_and_wait(guardian, "button:has-text('Approve the account')")
    assert path_of(guardian) == "/guardian"
    axe_check(guardian)

    # The minor signs in (the code from registration) and sees an active account.
    minor.fill("#code", code_in(mail_to(live_smtp, minor_email, "sign-in code")))
    click_and_wait(minor, "main button[type=submit]")
    assert path_of(minor) == "/me"
    axe_check(minor)
    # Only the guardian can switch an optional purpose on for a child (PIPL art. 31).
    pw_expect(minor.locator("#consent-trend_analysis-switch")).to_be_disabled()
    pw_expect(minor.locator("#consent-trend_analysis-guardian")).to_contain_text("Parent Lee")
    pw_expect(minor.locator("#consent-advertising-switch")).to_be_disabled()

    # The guardian turns trend analysis on for the ward, in place.
    click_and_wait(guardian, "main a:has-text('Little Lee')")
    axe_check(guardian)
    switch = guardian.locator("#consent-trend_analysis-switch")
    with guardian.expect_response(lambda r: "/consents/trend_analysis" in r.url):
        switch.click()
    pw_expect(switch).to_have_attribute("aria-checked", "true")
    axe_check(guardian, within=["#consent-trend_analysis", "#status"])

    visit(minor, "/me/history")
    row = minor.locator("main tbody tr").first
    pw_expect(row).to_contain_text("Trend analysis")
    pw_expect(row).to_contain_text("Your guardian")
