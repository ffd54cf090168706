"""Registration: optional purposes unticked, no password, bad input loses nothing."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from html import unescape

import pytest
from sqlalchemy import func, select

from consent_center import clock
from consent_center.extensions import db
from consent_center.models import ConsentEvent, ConsentState, Member, Notification
from tests.conftest import make_member, post
from tests.support.outbox import mailbox
from tests.support.writes import nothing_written

GOOD = {
    "name": "Li Wei",
    "email": "li.wei@example.org",
    "phone": "138 0013 8000",
    "gender": "female",
    "birth_date": "1992-04-05",
    "locale": "zh_Hans_CN",
}


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_form_has_no_password_and_purposes_start_unticked(client):
    page = client.get("/register").get_data(as_text=True)
    assert 'type="password"' not in page and 'name="password"' not in page
    for purpose in ("trend_analysis", "advertising"):
        tag = page.split(f'id="{purpose}"')[0].rsplit("<input", 1)[1]
        assert "checked" not in tag


def test_register_creates_member_without_optional_consent(client, policy):
    response = post(client, "/register", GOOD)
    assert response.status_code == 303 and response.headers["Location"].startswith("/sign-in/code")
    member = db.session.scalars(select(Member)).one()
    assert member.email == "li.wei@example.org"
    assert member.phone == "+8613800138000" and member.phone_verified_at is None
    assert member.locale == "zh_Hans_CN" and member.birth_date == date(1992, 4, 5)
    assert count(ConsentEvent) == 0 and count(ConsentState) == 0
    message = mailbox()[0]
    assert message["to"] == "li.wei@example.org" and message["kind"] == "sign_in_code"
    # Chinese chosen at registration: the message is in Chinese.
    assert "验证码" in message["subject"] or "验证码" in message["text"]


def test_registration_ticks_wait_until_the_address_is_verified(client, app, policy):
    from datetime import timedelta

    from tests.conftest import publish_notice
    from tests.support.api import bearer, make_token
    from tests.test_auth import latest_code

    registered_at = clock.utcnow().replace(microsecond=0)
    clock.freeze(registered_at)
    post(client, "/register", dict(GOOD, trend_analysis="y", advertising="y"))
    member = db.session.scalars(select(Member)).one()
    assert member.status == "unverified"
    assert member.pending_purposes == "trend_analysis,advertising"
    assert count(ConsentEvent) == 0 and count(ConsentState) == 0
    # Nobody proved the address: the API says not usable, no audience holds it, no notice.
    token = make_token()
    got = client.get(f"/api/v1/members/{member.public_id}/consents", headers=bearer(token))
    assert {c["purpose"]: c["usable_now"] for c in got.get_json()["consents"]} == {
        "trend_analysis": False, "advertising": False}
    for purpose in ("trend_analysis", "advertising"):
        rows = client.get(f"/api/v1/audiences/{purpose}", headers=bearer(token))
        assert member.public_id not in rows.get_data(as_text=True)
    publish_notice(app, summary="y")
    assert db.session.scalars(select(Notification).where(
        Notification.kind == "policy_notice")).first() is None
    from consent_center.services.incidents import recipient_counts

    assert recipient_counts({})["members"] == 0  # nor a security incident notice
    # Entering the code verifies the address: the ticks are recorded now, as registration.
    verified_at = registered_at + timedelta(minutes=4)
    clock.freeze(verified_at)
    response = post(client, "/sign-in/code", {"code": latest_code(GOOD["email"])})
    assert response.status_code == 303
    db.session.refresh(member)
    assert member.status == "active" and member.pending_purposes is None
    events = db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.seq)).all()
    assert [(e.purpose, e.granted, e.method, e.actor) for e in events] == [
        ("trend_analysis", True, "registration", "member"),
        ("advertising", True, "registration", "member")]
    assert {e.created_at for e in events} == {verified_at}
    # The ticks carry the language the registration form recorded (issue 18 §4).
    assert {e.locale for e in events} == {"zh_Hans_CN"}
    got = client.get(f"/api/v1/members/{member.public_id}/consents", headers=bearer(token))
    assert all(c["usable_now"] for c in got.get_json()["consents"])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "", b"Tell us your name"),
        ("name", "Card 4111 1111 1111 1111", b"payment card number"),
        ("name", "password: hunter2", b"password"),
        ("email", "not-an-email", b"valid email"),
        ("phone", "12345", b"valid mobile number"),
        ("birth_date", "", b"date of birth"),
        ("birth_date", "2999-01-01", b"real date of birth"),
        ("birth_date", "31/12/1990", b"Not a valid date"),
    ],
)
def test_bad_input_is_a_field_error_and_writes_nothing(client, field, value, message):
    with nothing_written():
        response = post(client, "/register", dict(GOOD, **{field: value}))
    assert response.status_code == 422
    assert message in response.data
    assert f'id="{field}-error"'.encode() in response.data
    assert count(Member) == 0 and count(Notification) == 0


def test_minor_without_guardian_contact_gets_a_clear_message(client, app):
    clock.freeze(datetime(2026, 11, 25, 9, tzinfo=UTC))
    with nothing_written():
        response = post(client, "/register", dict(GOOD, birth_date="2013-01-01"))
    assert response.status_code == 422
    assert b"You are under 14" in response.data and b'id="guardian_contact-error"' in response.data
    assert count(Member) == 0


def test_existing_email_looks_the_same_and_sends_a_sign_in_code(client, app, policy):
    existing = make_member(email="li.wei@example.org", name="Original")
    response = post(client, "/register", dict(GOOD, name="Impostor", trend_analysis="y"))
    assert response.status_code == 303 and response.headers["Location"].startswith("/sign-in/code")
    assert count(Member) == 1
    db.session.refresh(existing)
    assert (existing.name, existing.phone, existing.pending_purposes) == ("Original", None, None)
    assert count(ConsentEvent) == 0 and count(ConsentState) == 0
    assert mailbox()[0]["kind"] == "sign_in_code"
    # The page says what may have happened, in the same words as for a new address.
    words = ("If this address already has an account, we sent it a sign-in code instead, and "
             "the details you just entered were not saved")
    page = client.get("/sign-in/code").get_data(as_text=True).replace("&#39;", "'")
    fresh = app.test_client()
    post(fresh, "/register", dict(GOOD, email="someone.new@example.org"))
    fresh_page = fresh.get("/sign-in/code").get_data(as_text=True).replace("&#39;", "'")
    assert words in page and words in fresh_page
    assert page.replace("l***", "").count("<p>") == fresh_page.count("<p>")
    # A plain sign-in does not show them.
    post(client, "/sign-in", {"identifier": "li.wei@example.org"})
    assert words not in client.get("/sign-in/code").get_data(as_text=True)


def test_ticks_count_only_with_the_registrations_own_code(client, app, policy):
    from tests.test_auth import latest_code

    post(app.test_client(), "/register", dict(GOOD, name="Someone Else", trend_analysis="y"))
    member = db.session.scalars(select(Member)).one()
    assert member.pending_purposes == "trend_analysis"
    # The address's owner registers too: they get a sign-in code, and verifying with it
    # does not turn the first registrant's ticks into the owner's consent.
    post(client, "/register", GOOD)
    response = post(client, "/sign-in/code", {"code": latest_code(GOOD["email"])})
    assert response.status_code == 303
    db.session.refresh(member)
    assert member.status == "active" and member.pending_purposes is None
    assert count(ConsentEvent) == 0 and count(ConsentState) == 0


def test_unverified_accounts_are_erased_after_the_retention_period(client, app, runner):
    from datetime import timedelta

    clock.freeze(clock.utcnow())
    start = clock.utcnow()
    post(client, "/register", dict(GOOD, trend_analysis="y"))
    unverified = db.session.scalars(select(Member)).one()
    verified = make_member(created_at=start - timedelta(days=30))
    staff = make_member(role="staff", email_verified_at=None, created_at=start - timedelta(days=30))
    waiting = make_member(status="awaiting_guardian", email_verified_at=None,
                          birth_date=date(2016, 1, 1), created_at=start)
    signed_in = make_member(status="awaiting_guardian", birth_date=date(2016, 1, 1),
                            created_at=start - timedelta(days=30))
    clock.freeze(start + timedelta(days=7) - timedelta(seconds=1))
    result = runner.invoke(args=["members", "purge-unverified"])
    assert result.exit_code == 0 and "0 unverified" in result.output
    db.session.expire_all()
    assert db.session.get(Member, unverified.id).status == "unverified"
    clock.freeze(start + timedelta(days=7, seconds=1))
    result = runner.invoke(args=["members", "purge-unverified"])
    assert result.exit_code == 0 and "2 unverified account(s) erased" in result.output
    db.session.expire_all()
    gone = db.session.get(Member, unverified.id)
    assert gone.status == "erased" and gone.email is None and gone.pending_purposes is None
    assert db.session.scalars(select(Notification.recipient)).all() == [None]
    assert db.session.get(Member, verified.id).status == "active"
    assert db.session.get(Member, staff.id).status == "active"
    assert db.session.get(Member, waiting.id).status == "erased"
    assert db.session.get(Member, signed_in.id).status == "awaiting_guardian"
    assert count(ConsentEvent) == 0


def test_the_worker_runs_the_purge_once_a_day(client, app):
    from datetime import timedelta

    from consent_center.notify.worker import DailyTasks

    clock.freeze(clock.utcnow())
    start = clock.utcnow()
    post(client, "/register", GOOD)
    first = db.session.scalars(select(Member)).one()
    clock.freeze(start + timedelta(days=8))
    daily = DailyTasks()
    assert daily.run_if_due()["members purge-unverified"] == 1
    db.session.expire_all()
    assert db.session.get(Member, first.id).status == "erased"
    post(app.test_client(), "/register", dict(GOOD, email="second@example.org"))
    clock.freeze(start + timedelta(days=8, hours=23))
    assert daily.run_if_due() is None  # the next run is due a day after the first
    clock.freeze(start + timedelta(days=9))
    assert daily.run_if_due()["members purge-unverified"] == 0
    clock.freeze(start + timedelta(days=15, seconds=1))
    assert daily.run_if_due()["members purge-unverified"] == 1


def test_free_text_refuses_card_numbers_with_luhn():
    from consent_center.services.validation import contains_card_number, secret_text_problem

    assert contains_card_number("pay with 4111-1111-1111-1111 please")
    assert contains_card_number("5500 0000 0000 0004")
    assert not contains_card_number("4111 1111 1111 1112")  # fails Luhn
    assert not contains_card_number("call +86 138 0013 8000")
    assert secret_text_problem("my pin: 1234") is not None
    assert secret_text_problem("Li Wei") is None


def test_a_refused_card_number_is_not_shown_back(client):
    with nothing_written():
        response = post(client, "/register", dict(GOOD, name="Li 4111 1111 1111 1111"))
    assert response.status_code == 422
    assert b"4111 1111 1111 1111" not in response.data


def test_the_code_page_names_the_address_just_given(client, policy):
    response = post(client, "/register", dict(GOOD, email="wang.fang@example.org", locale="en"))
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "We sent a 6-digit code to w***@example.org" in page
    assert "wang.fang@example.org" not in page  # masked


def test_the_guardian_field_says_it_is_optional(client):
    page = client.get("/register").get_data(as_text=True)
    assert "guardian's email or mobile number (optional)" in unescape(page)


@pytest.mark.parametrize("path", ["/register", "/sign-in"])
def test_each_error_is_shown_once(client, path):
    data = dict(GOOD, name="   ", birth_date="") if path == "/register" else {"identifier": "x"}
    page = post(client, path, data).get_data(as_text=True)
    summary = page.split('class="error-summary"', 1)[1].split("</div>", 1)[0]
    errors = re.findall(r'<ul class="field-errors"[^>]*>(.*?)</ul>', page, re.S)
    messages = [m.strip() for block in errors for m in re.findall(r"<li>(.*?)</li>", block, re.S)]
    assert messages
    for message in messages:
        assert page.count(message) == 1, message
        assert message not in summary
    assert 'href="#' in summary
