"""Registration: optional purposes unticked, no password, bad input loses nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from consent_center import clock
from consent_center.extensions import db
from consent_center.models import ConsentEvent, ConsentState, Member, Notification
from consent_center.notify.dev import read_mailbox
from tests.conftest import make_member, post
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
    message = read_mailbox()[0]
    assert message["to"] == "li.wei@example.org" and message["kind"] == "sign_in_code"
    # Chinese chosen at registration: the message is in Chinese.
    assert "验证码" in message["subject"] or "验证码" in message["text"]


def test_register_with_optional_purposes_records_receipts(client, policy):
    post(client, "/register", dict(GOOD, trend_analysis="y"))
    member = db.session.scalars(select(Member)).one()
    event = db.session.scalars(select(ConsentEvent)).one()
    assert (event.member_id, event.purpose, event.granted) == (member.id, "trend_analysis", True)
    assert event.method == "registration" and event.policy_version_id == policy.id


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


def test_existing_email_looks_the_same_and_sends_a_sign_in_code(client):
    existing = make_member(email="li.wei@example.org", name="Original")
    response = post(client, "/register", dict(GOOD, name="Impostor"))
    assert response.status_code == 303 and response.headers["Location"].startswith("/sign-in/code")
    assert count(Member) == 1
    db.session.refresh(existing)
    assert existing.name == "Original"
    assert read_mailbox()[0]["kind"] == "sign_in_code"


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
