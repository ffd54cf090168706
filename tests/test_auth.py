"""Password-less sign-in: codes hashed, expiring, single use, few attempts, rate-limited,
and the same answer whether or not the account exists."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from consent_center import clock
from consent_center.extensions import db
from consent_center.models import AuditEvent, Notification, OneTimeCode
from tests.conftest import csrf_token, make_member, post
from tests.support.outbox import mailbox
from tests.support.queries import count_queries
from tests.support.writes import WRONG_CODE, nothing_written

ATTEMPTS = WRONG_CODE


def latest_code(to: str) -> str:
    for message in mailbox():
        if message["to"] == to:
            return re.search(r"\b(\d{6})\b", message["text"]).group(1)
    raise AssertionError(f"no message to {to}")


def start_sign_in(client, identifier: str):
    return post(client, "/sign-in", {"identifier": identifier})


def test_sign_in_with_email_code(client, member):
    response = start_sign_in(client, member.email.upper())
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/sign-in/code")
    code = latest_code(member.email)
    response = post(client, "/sign-in/code", {"code": code})
    assert response.status_code == 303 and response.headers["Location"] == "/me"
    assert client.get("/me").status_code == 200
    audit = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "auth.signed_in"))
    assert len(list(audit)) == 1


def test_code_is_stored_only_as_hash_and_message_is_masked(client, member):
    start_sign_in(client, member.email)
    code = latest_code(member.email)
    row = db.session.scalars(select(OneTimeCode)).one()
    assert code not in row.code_hash and len(row.code_hash) == 64
    notification = db.session.scalars(select(Notification)).one()
    assert code not in (notification.body_text or "") + (notification.body_html or "")
    assert "••••••" in notification.body_text
    assert notification.status == "sent"


def test_unknown_account_gets_the_same_answer_and_no_message(client, member):
    known = start_sign_in(client, member.email)
    other = client.application.test_client()
    unknown = start_sign_in(other, "nobody@example.org")
    assert known.status_code == unknown.status_code == 303
    assert known.headers["Location"] == unknown.headers["Location"]
    page_known = client.get("/sign-in/code").get_data(as_text=True)
    page_unknown = other.get("/sign-in/code").get_data(as_text=True)
    assert "m***@example.org" in page_known and "n***@example.org" in page_unknown
    assert [m["to"] for m in mailbox()] == [member.email]
    with nothing_written(except_columns=ATTEMPTS):
        response = post(other, "/sign-in/code", {"code": "000000"})
    assert response.status_code == 422


def test_wrong_code_then_lockout_after_five_attempts(client, member):
    start_sign_in(client, member.email)
    code = latest_code(member.email)
    wrong = "111111" if code != "111111" else "222222"
    for _ in range(4):
        with nothing_written(except_columns=ATTEMPTS):
            response = post(client, "/sign-in/code", {"code": wrong})
        assert response.status_code == 422
        assert b"not right" in response.data
    with nothing_written(except_columns=ATTEMPTS):
        response = post(client, "/sign-in/code", {"code": wrong})
    assert response.status_code == 429
    # Even the right code no longer works: ask for a new one.
    response = post(client, "/sign-in/code", {"code": code})
    assert response.status_code == 303 and "/sign-in" in response.headers["Location"]
    assert client.get("/me").status_code == 302


def test_code_expires_after_ten_minutes(client, member):
    start = clock.utcnow()
    clock.freeze(start)
    start_sign_in(client, member.email)
    code = latest_code(member.email)
    clock.freeze(start + timedelta(minutes=10, seconds=1))
    with nothing_written():
        response = post(client, "/sign-in/code", {"code": code})
    assert response.status_code == 422 and b"expired" in response.data


def test_code_is_single_use(client, member):
    start_sign_in(client, member.email)
    code = latest_code(member.email)
    token = db.session.scalars(select(OneTimeCode.token)).one()
    assert post(client, "/sign-in/code", {"code": code}).status_code == 303
    # Replaying the same code in another session fails.
    other = client.application.test_client()
    with other.session_transaction() as session:
        session["sign_in_token"] = token
    with nothing_written():
        assert post(other, "/sign-in/code", {"code": code}).status_code == 422


def test_session_rotates_on_sign_in(client, member):
    before = csrf_token(client)
    start_sign_in(client, member.email)
    post(client, "/sign-in/code", {"code": latest_code(member.email)})
    after = csrf_token(client, "/me")
    assert before != after
    # A form from before sign-in is refused.
    with nothing_written():
        response = client.post(
            "/me/consents/advertising", data={"granted": "1", "csrf_token": before}
        )
    assert response.status_code == 400


def test_sign_in_by_verified_phone_only(client):
    unverified = make_member(phone="+8613800138000")
    start_sign_in(client, "138 0013 8000")
    assert mailbox() == []
    unverified.phone_verified_at = clock.utcnow()
    db.session.commit()
    start_sign_in(client, "+86 138 0013 8000")
    message = mailbox()[0]
    assert message["channel"] == "sms" and message["to"] == "+8613800138000"
    assert len(message["text"]) <= 160


def test_malformed_identifier_is_a_field_error(client):
    with nothing_written():
        response = start_sign_in(client, "not an address")
    assert response.status_code == 422
    assert b'aria-invalid="true"' in response.data
    assert db.session.scalars(select(OneTimeCode)).first() is None


def test_rate_limit_per_identifier(client, member, app):
    app.config["CODE_RATE_LIMIT_DESTINATION"] = "3 per 10 minutes"
    for _ in range(3):
        assert start_sign_in(client, member.email).status_code == 303
    other = app.test_client()
    with nothing_written():
        assert start_sign_in(other, member.email).status_code == 429
    assert start_sign_in(other, "someone.else@example.org").status_code == 303


def test_rate_limit_per_ip(client, app):
    app.config["SIGN_IN_RATE_LIMIT_IP"] = "2 per 10 minutes"
    assert start_sign_in(client, "a@example.org").status_code == 303
    assert start_sign_in(client, "b@example.org").status_code == 303
    with nothing_written():
        refused = start_sign_in(client, "c@example.org")
    assert refused.status_code == 429
    # When to come back: within the 10-minute window (its reset is rounded up a second).
    assert 0 < int(refused.headers["Retry-After"]) <= 601


def test_sign_out_requires_post_and_ends_the_session(client, member, login_as):
    login_as(member)
    assert client.get("/sign-out").status_code == 405
    response = post(
        client,
        "/sign-out",
        {},
    )
    assert response.status_code == 303
    assert client.get("/me").status_code == 302


def test_open_redirect_after_sign_in_is_refused(client, member):
    post(client, "/sign-in?next=//evil.example/", {"identifier": member.email})
    response = post(
        client, "/sign-in/code?next=//evil.example/", {"code": latest_code(member.email)}
    )
    assert response.headers["Location"] == "/me"


def test_me_requires_sign_in(client):
    response = client.get("/me")
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_known_and_an_unknown_address_cost_the_same_round_trips(app, member, backend):
    """Timing without a stopwatch: asking for a code sends the same statements to the database
    whether or not the address has an account, and nothing over SMTP (the worker sends it
    after commit). bench/signin_timing.py measures the time itself. (On SQLite, which has no
    NOTIFY, the known address costs one local INSERT more.)"""
    statements = {}
    for identifier in (member.email, "nobody@example.org"):
        browser = app.test_client()
        token = csrf_token(browser)
        with count_queries() as log:
            response = browser.post(
                "/sign-in", data={"identifier": identifier, "csrf_token": token}
            )
        assert response.status_code == 303
        statements[identifier] = log
    known, unknown = statements[member.email], statements["nobody@example.org"]
    assert len(known) == len(unknown)
    # ... the last of them NOTIFYs the worker in both cases (the INSERT of the message, or
    # the NOTIFY alone), so the commits cost alike too.
    assert "pg_notify" in known[-1] and "INSERT" in known[-1] and "pg_notify" in unknown[-1]
    assert db.session.scalars(select(Notification.status)).all() == ["pending"]
