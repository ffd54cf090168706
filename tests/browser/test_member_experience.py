"""What a member sees of staff and of their own corrections, in a real browser, with and
without JavaScript, in English and Chinese, at 1280 px and 375 px (axe-core on every page):

- Who looked at my data: staff give a reason before a record opens; the member reads when,
  in which role and why.
- A date of birth corrected across MINOR_AGE waits for staff, who approve it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page
from playwright.sync_api import expect as pw_expect
from sqlalchemy import select

from consent_center.cli import DEMO_MEMBER_EMAIL, DEMO_STAFF_EMAIL
from consent_center.extensions import db
from consent_center.models import BirthDateReview, Member

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 800}


def click_and_wait(page: Page, selector: str) -> None:
    with page.expect_navigation():
        page.locator(selector).first.click()


def fits_a_phone(page: Page, axe_check) -> None:
    """At 375 px the page reads without sideways scrolling, and stays axe-clean."""
    size = page.viewport_size
    page.set_viewport_size(PHONE)
    try:
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (urlsplit(page.url).path, width)
        axe_check(page)
    finally:
        page.set_viewport_size(size)


def to_chinese(page: Page, axe_check) -> None:
    click_and_wait(page, "header .language-switcher button:text-is('简体中文')")
    pw_expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    axe_check(page)


def demo_member(live_server) -> str:
    return live_server.query(
        lambda: db.session.scalar(select(Member.public_id).where(Member.email == DEMO_MEMBER_EMAIL))
    )


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_who_looked_at_my_data(browsing, visit, axe_check, live_server, sign_in, js):
    staff = browsing.new_page(js=js)
    sign_in(staff, DEMO_STAFF_EMAIL)
    visit(staff, f"/staff/members/{demo_member(live_server)}")
    pw_expect(staff.locator("h1")).to_have_text("Why are you opening this record?")
    staff.check("#reason-member_request")
    click_and_wait(staff, "main form button[type=submit]")
    axe_check(staff)
    pw_expect(staff.locator("main")).to_contain_text(DEMO_MEMBER_EMAIL)

    member = browsing.new_page(js=js)
    sign_in(member)
    click_and_wait(member, "a:has-text('Who looked at my data')")
    axe_check(member)
    row = member.locator("main table tbody tr")
    pw_expect(row).to_have_count(1)
    pw_expect(row).to_contain_text("Answering a request or question from the member")
    pw_expect(row).to_contain_text("Staff")
    pw_expect(member.locator("main")).not_to_contain_text(DEMO_STAFF_EMAIL)
    fits_a_phone(member, axe_check)
    to_chinese(member, axe_check)
    pw_expect(member.locator("h1")).to_have_text("谁查看了我的数据")
    pw_expect(row).to_contain_text("答复会员本人的请求或问题")
    fits_a_phone(member, axe_check)


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_a_birth_date_across_the_minor_age_waits_for_staff(
    browsing, visit, axe_check, live_server, sign_in, js
):
    member = browsing.new_page(js=js)
    sign_in(member)
    visit(member, "/me/profile")
    member.fill("#birth_date", "2016-05-01")
    click_and_wait(member, "main form button:has-text('Save')")
    axe_check(member)
    pw_expect(member.locator("main")).to_contain_text("our staff check it")
    visit(member, "/me/profile")
    pw_expect(member.locator("#birth-date-review")).to_contain_text("a minor")
    fits_a_phone(member, axe_check)
    to_chinese(member, axe_check)
    pw_expect(member.locator("#birth-date-review")).to_contain_text("未成年人")
    fits_a_phone(member, axe_check)

    staff = browsing.new_page(js=js)
    sign_in(staff, DEMO_STAFF_EMAIL)
    visit(staff, "/staff/birth-dates")
    click_and_wait(staff, "main table a[href^='/staff/birth-dates/']")
    axe_check(staff)
    pw_expect(staff.locator("main")).to_contain_text("1 May 2016")
    click_and_wait(staff, "button:has-text('Approve the new date')")
    axe_check(staff)
    status = live_server.query(lambda: db.session.scalar(select(BirthDateReview.status)))
    assert status == "approved"
    visit(member, "/me/profile")
    pw_expect(member.locator("#birth-date-review")).to_have_count(0)
    pw_expect(member.locator("#birth_date")).to_have_value("2016-05-01")
