"""Correcting one's data: plain fields at once, new contact details only once confirmed."""

from __future__ import annotations

import re

from sqlalchemy import select

from consent_center.extensions import db
from consent_center.models import AuditEvent
from consent_center.notify.dev import read_mailbox
from tests.conftest import make_member, post
from tests.support.writes import nothing_written


def code_sent_to(to: str) -> str:
    message = next(m for m in read_mailbox() if m["to"] == to)
    return re.search(r"\b(\d{6})\b", message["text"]).group(1)


def profile(member, **changes):
    data = {
        "name": member.name,
        "gender": member.gender or "",
        "locale": member.locale,
        "email": member.email,
        "phone": member.phone or "",
    }
    data.update(changes)
    return data


def test_correct_name_gender_language(client, member, login_as):
    login_as(member)
    response = post(
        client, "/me/profile", profile(member, name="New Name", gender="other", locale="zh_Hans_CN")
    )
    assert response.status_code == 303 and response.headers["Location"] == "/me"
    db.session.refresh(member)
    assert (member.name, member.gender, member.locale) == ("New Name", "other", "zh_Hans_CN")
    audit = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "profile.corrected"))
    assert audit.one().details == {"fields": ["name", "gender", "locale"]}
    assert read_mailbox() == []


def test_new_email_replaces_old_only_after_code(client, member, login_as):
    old = member.email
    login_as(member)
    response = post(client, "/me/profile", profile(member, email="new@example.org"))
    assert response.status_code == 303 and response.headers["Location"] == "/me/profile/verify"
    db.session.refresh(member)
    assert member.email == old
    code = code_sent_to("new@example.org")
    with nothing_written(except_columns=("one_time_code.attempts",)):
        assert (
            post(
                client, "/me/profile/verify", {"code": "000000" if code != "000000" else "1"}
            ).status_code
            == 422
        )
    assert post(client, "/me/profile/verify", {"code": code}).status_code == 303
    db.session.refresh(member)
    assert member.email == "new@example.org" and member.email_verified_at is not None


def test_new_phone_is_verified_by_sms(client, member, login_as):
    login_as(member)
    post(client, "/me/profile", profile(member, phone="+44 7911 123456"))
    message = read_mailbox()[0]
    assert message["channel"] == "sms" and message["to"] == "+447911123456"
    post(client, "/me/profile/verify", {"code": code_sent_to("+447911123456")})
    db.session.refresh(member)
    assert member.phone == "+447911123456" and member.phone_verified_at is not None


def test_contact_already_verified_elsewhere_cannot_be_taken(client, member, login_as):
    make_member(email="taken@example.org")
    login_as(member)
    post(client, "/me/profile", profile(member, email="taken@example.org"))
    # The right code is used up even so (single use); nothing else changes.
    with nothing_written(except_columns=("one_time_code.consumed_at",)):
        response = post(client, "/me/profile/verify", {"code": code_sent_to("taken@example.org")})
    assert response.status_code == 422 and b"cannot be used" in response.data
    db.session.refresh(member)
    assert member.email != "taken@example.org"


def test_bad_profile_input_changes_nothing(client, member, login_as):
    login_as(member)
    name = member.name
    with nothing_written():
        response = post(
            client, "/me/profile", profile(member, name="4111111111111111", phone="not a phone")
        )
    assert response.status_code == 422
    assert b"payment card number" in response.data and b"valid mobile number" in response.data
    db.session.refresh(member)
    assert member.name == name


def test_remove_and_verify_phone(client, login_as):
    member = make_member(phone="+8613800138000")
    login_as(member)
    response = post(client, "/me/profile/phone/verify", {})
    assert response.status_code == 303
    post(client, "/me/profile/verify", {"code": code_sent_to("+8613800138000")})
    db.session.refresh(member)
    assert member.phone_verified_at is not None
    post(client, "/me/profile/phone/remove", {})
    db.session.refresh(member)
    assert member.phone is None and member.phone_verified_at is None
