"""The staff side of a policy change in a real browser: draft with the live preview, save,
publish with a 30-day notice, watch the fan-out finish; then the member sees the notice,
opens the diff and acknowledges it, and the SMTP server received the member's email.
axe-core checks every page and every htmx swap (see conftest.py)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page
from playwright.sync_api import expect as pw_expect

from consent_center.cli import DEMO_MEMBER_EMAIL, DEMO_STAFF_EMAIL
from consent_center.clock import utcnow
from consent_center.notify.worker import drain
from consent_center.services.localtime import earliest_local_day

pytestmark = pytest.mark.browser

NEW_PARAGRAPH_ZH = "我们也会将您的信息用于广告策划。"
NEW_PARAGRAPH = "We now also plan advertising with your data when you allow it."


def path_of(page: Page) -> str:
    return urlsplit(page.url).path


def path_of_url(url: str) -> str:
    return urlsplit(url).path


def click_and_wait(page: Page, selector: str) -> None:
    with page.expect_navigation():
        page.locator(selector).click()


def test_publish_with_notice_member_acknowledges(
    browsing, visit, axe_check, live_server, sign_in, live_smtp
):
    staff = browsing.new_page()
    sign_in(staff, DEMO_STAFF_EMAIL)
    visit(staff, "/staff")
    click_and_wait(staff, "nav.staff-nav >> text=Policies")
    axe_check(staff)
    click_and_wait(staff, "text=Draft a new version")
    assert path_of(staff) == "/staff/policies/new"
    axe_check(staff)

    # Typing updates the preview through htmx (one debounced request for the burst).
    effective = live_server.query(
        lambda: earliest_local_day(
            utcnow() + timedelta(days=live_server.app.config["POLICY_PURPOSE_NOTICE_DAYS"])
        )
    )
    # Publishing needs the Simplified Chinese words too (the title and text start from v1).
    # They are set without input events, so that the burst below stays one preview request.
    set_value = "(el, value) => { el.value = value; }"
    staff.locator("#summary_zh").evaluate(set_value, "我们新增广告策划作为您数据的用途。")
    body_zh = staff.input_value("#body_md_zh")
    staff.locator("#body_md_zh").evaluate(set_value, body_zh + "\n\n" + NEW_PARAGRAPH_ZH + "\n")
    with staff.expect_response(lambda r: path_of_url(r.url) == "/staff/policies/preview"):
        staff.fill("#summary", "We add advertising planning as a use of your data.")
        staff.check("#changed-advertising")
        staff.fill("#effective_on", effective.isoformat())
        body = staff.input_value("#body_md")
        staff.fill("#body_md", body + "\n\n" + NEW_PARAGRAPH + "\n")
    pw_expect(staff.locator("#policy-preview .diff[lang=en] ins")).to_contain_text("advertising")
    pw_expect(staff.locator("#policy-preview .diff[lang=zh-Hans] ins")).to_contain_text("广告策划")
    axe_check(staff, within=["#policy-preview"])

    click_and_wait(staff, "button:has-text('Save draft')")
    axe_check(staff)
    pw_expect(staff.locator("main")).to_contain_text(NEW_PARAGRAPH)
    click_and_wait(staff, "text=Publish…")
    axe_check(staff)
    staff.check("#confirm")
    click_and_wait(staff, "button:has-text('Publish and notify members')")
    assert path_of(staff).startswith("/staff/fan-outs/")
    axe_check(staff)

    # The worker delivers; the progress section polls itself until every message is final.
    live_server.query(drain)
    fan_out_path = path_of(staff)
    for _ in range(5):
        with staff.expect_response(lambda r: path_of_url(r.url) == fan_out_path):
            pass
        staff.wait_for_timeout(100)  # let htmx swap the fragment in
        axe_check(staff, within=["#fan-out-progress"])
        if "Done." in staff.inner_text("#fan-out-progress"):
            break
    pw_expect(staff.locator("#fan-out-progress")).to_contain_text("Done.")

    # The member: the notice, the diff behind it, and one click to hide it.
    member = browsing.new_page()
    sign_in(member, DEMO_MEMBER_EMAIL)
    notice = member.locator("#policy-notice")
    pw_expect(notice).to_contain_text("Policy changes on")
    pw_expect(notice).to_contain_text("We add advertising planning")
    click_and_wait(member, "#policy-notice >> text=See exactly what changes")
    assert path_of(member) == "/policy/versions/2"
    axe_check(member)
    pw_expect(member.locator(".diff ins", has_text=NEW_PARAGRAPH)).to_have_count(1)
    visit(member, "/me")
    with member.expect_response(lambda r: path_of_url(r.url).endswith("/ack")):
        member.locator("#policy-notice button").click()
    pw_expect(member.locator("#policy-notice")).to_have_count(0)
    axe_check(member, within=["main"])

    # The SMTP server received the member's notice.
    mail = [m for m in live_smtp.messages if m.rcpt_tos == [DEMO_MEMBER_EMAIL]]
    assert mail, [m.rcpt_tos for m in live_smtp.messages]
    assert "privacy policy changes on" in mail[-1].message["Subject"]
