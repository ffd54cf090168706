"""Correcting one's data: plain fields at once, new contact details only once confirmed."""

from __future__ import annotations

import re

from sqlalchemy import select

from consent_center.extensions import db
from consent_center.models import AuditEvent
from tests.conftest import make_member, post
from tests.support.outbox import mailbox
from tests.support.writes import WRONG_CODE, nothing_written


def code_sent_to(to: str, kind: str | None = None) -> str:
    message = next(m for m in mailbox() if m["to"] == to and kind in (None, m["kind"]))
    return re.search(r"\b(\d{6})\b", message["text"]).group(1)


def prove_identity(client, to: str):
    """Enter the code sent to the member's current details (step one of a contact change)."""
    return post(
        client, "/me/profile/confirm-identity", {"code": code_sent_to(to, "contact_change_code")}
    )


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
    assert mailbox() == []


def test_new_email_replaces_old_only_after_code(client, member, login_as):
    old = member.email
    login_as(member)
    response = post(client, "/me/profile", profile(member, email="new@example.org"))
    assert response.status_code == 303
    assert response.headers["Location"] == "/me/profile/confirm-identity"
    response = prove_identity(client, old)
    assert response.status_code == 303 and response.headers["Location"] == "/me/profile/verify"
    db.session.refresh(member)
    assert member.email == old
    code = code_sent_to("new@example.org")
    with nothing_written(except_columns=WRONG_CODE):
        assert (
            post(
                client, "/me/profile/verify", {"code": "000000" if code != "000000" else "1"}
            ).status_code
            == 422
        )
    assert post(client, "/me/profile/verify", {"code": code}).status_code == 303
    db.session.refresh(member)
    assert member.email == "new@example.org" and member.email_verified_at is not None


def test_new_phone_is_verified_by_sms(client, member, login_as, app):
    app.config["SMS_ALLOWED_COUNTRIES"] = ("CN", "GG")  # +44 7911 numbers are Guernsey's
    login_as(member)
    post(client, "/me/profile", profile(member, phone="+44 7911 123456"))
    prove_identity(client, member.email)  # no verified phone yet: the email proves it is them
    message = mailbox()[0]
    assert message["channel"] == "sms" and message["to"] == "+447911123456"
    post(client, "/me/profile/verify", {"code": code_sent_to("+447911123456")})
    db.session.refresh(member)
    assert member.phone == "+447911123456" and member.phone_verified_at is not None


def test_contact_already_verified_elsewhere_cannot_be_taken(client, member, login_as):
    make_member(email="taken@example.org")
    login_as(member)
    post(client, "/me/profile", profile(member, email="taken@example.org"))
    prove_identity(client, member.email)
    code = code_sent_to("taken@example.org")  # a worker round, outside the refused request
    # The right code is used up even so (single use); nothing else changes.
    with nothing_written(except_columns=("one_time_code.consumed_at",)):
        response = post(client, "/me/profile/verify", {"code": code})
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


# --- A contact change proves the account holder first, and tells the old contact ----------


def test_a_contact_change_first_needs_a_code_from_the_current_email(client, member, login_as):
    """A session thief cannot move the account: nothing goes to the new address, and nothing
    changes, until the code sent to the current email is entered."""
    from consent_center.models import OneTimeCode

    login_as(member)
    post(client, "/me/profile", profile(member, email="thief@example.org"))
    proof = mailbox()
    assert [(m["to"], m["kind"]) for m in proof] == [(member.email, "contact_change_code")]
    page = client.get("/me/profile/confirm-identity").get_data(as_text=True)
    assert "m***@example.org" in page and "current email address" in page
    code = code_sent_to(member.email)
    wrong = "000000" if code != "000000" else "111111"
    response = post(client, "/me/profile/confirm-identity", {"code": wrong})
    assert response.status_code == 422
    # Skipping the step finds nothing to confirm.
    response = post(client, "/me/profile/verify", {"code": wrong})
    assert response.status_code == 303 and response.headers["Location"] == "/me/profile"
    assert [m["to"] for m in mailbox()] == [member.email]
    assert db.session.scalars(
        select(OneTimeCode).where(OneTimeCode.purpose == "verify_contact")
    ).all() == []
    old = member.email
    db.session.refresh(member)
    assert member.email == old


def test_the_proof_code_locks_after_too_many_wrong_attempts(client, member, login_as):
    login_as(member)
    post(client, "/me/profile", profile(member, email="new@example.org"))
    code = code_sent_to(member.email)
    wrong = "000000" if code != "000000" else "111111"
    statuses = [
        post(client, "/me/profile/confirm-identity", {"code": wrong}).status_code
        for _ in range(5)
    ]
    assert statuses == [422, 422, 422, 422, 429]
    response = post(client, "/me/profile/confirm-identity", {"code": code})
    assert response.status_code == 303 and response.headers["Location"] == "/me/profile"
    assert all(m["to"] != "new@example.org" for m in mailbox())


def test_a_phone_change_is_proved_on_the_current_verified_phone(client, login_as):
    from datetime import UTC, datetime

    member = make_member(phone="+8613800138000", phone_verified_at=datetime.now(UTC))
    login_as(member)
    post(client, "/me/profile", profile(member, phone="+8613900139000"))
    first = mailbox()[0]
    assert (first["to"], first["channel"], first["kind"]) == (
        "+8613800138000", "sms", "contact_change_code"
    )
    assert "current mobile number" in client.get("/me/profile/confirm-identity").get_data(
        as_text=True
    )
    prove_identity(client, "+8613800138000")
    post(client, "/me/profile/verify", {"code": code_sent_to("+8613900139000", "verify_contact")})
    db.session.refresh(member)
    assert member.phone == "+8613900139000"


def test_a_member_whose_only_verified_channel_is_the_phone_proves_with_it(client, login_as):
    from datetime import UTC, datetime

    member = make_member(
        email_verified_at=None, phone="+8613800138000", phone_verified_at=datetime.now(UTC)
    )
    login_as(member)
    post(client, "/me/profile", profile(member, email="new@example.org"))
    assert [(m["to"], m["kind"]) for m in mailbox()] == [
        ("+8613800138000", "contact_change_code")
    ]
    prove_identity(client, "+8613800138000")
    post(client, "/me/profile/verify", {"code": code_sent_to("new@example.org")})
    db.session.refresh(member)
    assert member.email == "new@example.org"


def test_email_and_phone_changed_together_need_one_proof_then_two_codes(client, member, login_as):
    login_as(member)
    post(client, "/me/profile", profile(member, email="new@example.org", phone="+8613900139000"))
    prove_identity(client, member.email)
    post(client, "/me/profile/verify", {"code": code_sent_to("new@example.org")})
    post(client, "/me/profile/verify", {"code": code_sent_to("+8613900139000")})
    db.session.refresh(member)
    assert (member.email, member.phone) == ("new@example.org", "+8613900139000")
    assert client.get("/me").status_code == 200


def _notices():
    from consent_center.models import Notification

    return db.session.scalars(
        select(Notification).where(Notification.kind == "contact_changed")
    ).all()


def test_the_old_email_is_told_of_the_change(client, member, login_as):
    old = member.email
    login_as(member)
    post(client, "/me/profile", profile(member, email="new@example.org"))
    prove_identity(client, old)
    assert _notices() == []  # nothing is changed yet
    post(client, "/me/profile/verify", {"code": code_sent_to("new@example.org")})
    (notice,) = _notices()
    assert (notice.channel, notice.recipient, notice.member_id) == ("email", old, member.id)
    assert "n***@example.org" in notice.body_text and "new@example.org" not in notice.body_text
    assert "If you did not make this change" in notice.body_text
    assert "/contact" in notice.body_text and "400-032-0988" in notice.body_text


def test_the_old_phone_is_texted_in_the_members_language(client, login_as):
    from datetime import UTC, datetime

    member = make_member(
        locale="zh_Hans_CN", phone="+8613800138000", phone_verified_at=datetime.now(UTC)
    )
    login_as(member)
    post(client, "/me/profile", profile(member, phone="+8613900139000"))
    prove_identity(client, "+8613800138000")
    post(client, "/me/profile/verify", {"code": code_sent_to("+8613900139000", "verify_contact")})
    (notice,) = _notices()
    assert (notice.channel, notice.recipient) == ("sms", "+8613800138000")
    assert "手机号已更改" in notice.body_text and "/contact" in notice.body_text


def test_verifying_the_same_number_tells_no_one_and_keeps_sessions(client, login_as):
    member = make_member(phone="+8613800138000")
    login_as(member)
    post(client, "/me/profile/phone/verify", {})
    post(client, "/me/profile/verify", {"code": code_sent_to("+8613800138000")})
    assert _notices() == []
    assert client.get("/me").status_code == 200
