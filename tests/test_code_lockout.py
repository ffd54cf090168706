"""Wrong codes are counted per account across fresh codes: at the limit the account accepts
no code (not even the right one) until the window has passed, and its owner is told once.
Codes are read as typed on any keyboard (NFKC, spaces and dashes ignored)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from consent_center import clock
from consent_center.extensions import db
from consent_center.models import AuditEvent, Notification
from tests.conftest import make_member, post
from tests.support.outbox import mailbox
from tests.test_auth import latest_code, start_sign_in
from tests.test_profile import code_sent_to

START = datetime(2026, 12, 5, 14, 0, tzinfo=UTC)  # 22:00 in Asia/Shanghai


@pytest.fixture(autouse=True)
def _roomy_budget(app):
    """These tests ask for many fresh codes; the per-destination budget is tested elsewhere."""
    app.config["CODE_RATE_LIMIT_DESTINATION"] = "50 per 10 minutes"


def wrong_for(code: str) -> str:
    return "111111" if code != "111111" else "222222"


def fresh_code(client, member) -> str:
    """Ask for a new sign-in code a second later (the dev mailbox orders by the clock)."""
    clock.freeze(clock.utcnow() + timedelta(seconds=1))
    assert start_sign_in(client, member.email).status_code == 303
    # By kind: the lockout notice goes to the same address, and a worker round sends it after
    # the codes (so it is the newest message there).
    return code_sent_to(member.email, "sign_in_code")


def fail_codes(client, member, times: int) -> str:
    """Ask for fresh codes and enter wrong ones `times` times; returns the latest code."""
    code = ""
    while times > 0:
        code = fresh_code(client, member)
        for _ in range(min(4, times)):
            assert post(client, "/sign-in/code", {"code": wrong_for(code)}).status_code == 422
            times -= 1
    return code


def lockout_messages(member) -> list[Notification]:
    return list(db.session.scalars(
        select(Notification).where(Notification.kind == "code_lockout",
                                   Notification.member_id == member.id)))


@pytest.mark.parametrize("role", ["member", "staff"])
def test_ten_wrong_codes_across_fresh_codes_lock_the_account(client, app, role):
    clock.freeze(START)
    member = make_member(role=role)
    fail_codes(client, member, 9)
    code = fresh_code(client, member)
    response = post(client, "/sign-in/code", {"code": wrong_for(code)})
    assert response.status_code == 429
    page = response.get_data(as_text=True)
    # Locked for the window, said in the display time zone (22:00 + 1 hour, Shanghai).
    assert "no code is accepted until 5 December 2026, 23:00" in page
    # Even the right code, and a fresh one, are refused until the window has passed.
    assert post(client, "/sign-in/code", {"code": fresh_code(client, member)}).status_code == 429
    assert client.get("/me").status_code == 302
    clock.freeze(START + timedelta(minutes=59))
    assert post(client, "/sign-in/code", {"code": fresh_code(client, member)}).status_code == 429
    # The owner is told once, on their verified email; the lock is audited once.
    [told] = lockout_messages(member)
    assert told.channel == "email" and told.recipient == member.email
    actions = db.session.scalars(select(AuditEvent.action)).all()
    assert actions.count("auth.codes_locked") == 1
    clock.freeze(START + timedelta(hours=1, minutes=1))
    assert post(client, "/sign-in/code", {"code": fresh_code(client, member)}).status_code == 303
    assert client.get("/me").status_code == 200
    assert len(lockout_messages(member)) == 1


def test_failures_older_than_the_window_do_not_count(client, app):
    clock.freeze(START)
    member = make_member()
    fail_codes(client, member, 9)
    clock.freeze(START + timedelta(hours=1, minutes=1))
    fail_codes(client, member, 9)
    assert lockout_messages(member) == []
    code = fresh_code(client, member)
    assert post(client, "/sign-in/code", {"code": wrong_for(code)}).status_code == 429
    assert len(lockout_messages(member)) == 1


def test_lockout_is_configurable_and_said_in_chinese(client, app):
    app.config.update(CODE_LOCKOUT_FAILURES=3, CODE_LOCKOUT_WINDOW_SECONDS=600)
    clock.freeze(START)
    member = make_member(locale="zh_Hans_CN")
    with client.session_transaction() as session:
        session["locale"] = "zh_Hans_CN"
    code = fail_codes(client, member, 2)
    response = post(client, "/sign-in/code", {"code": wrong_for(code)})
    assert response.status_code == 429
    assert "2026年12月5日 22:1" in response.get_data(as_text=True)
    [told] = lockout_messages(member)
    assert told.locale == "zh_Hans_CN" and "2026年12月5日 22:10" in told.body_text


def test_owner_with_only_a_verified_phone_is_told_by_sms(client, app):
    app.config["CODE_LOCKOUT_FAILURES"] = 2
    member = make_member(email=None, email_verified_at=None, phone="+8613800138000",
                         phone_verified_at=clock.utcnow())
    start_sign_in(client, "13800138000")
    code = next(m for m in mailbox() if m["to"] == member.phone)["text"]
    code = "".join(ch for ch in code if ch.isdigit())[:6]
    wrong = "111111" if code != "111111" else "222222"
    assert post(client, "/sign-in/code", {"code": wrong}).status_code == 422
    assert post(client, "/sign-in/code", {"code": wrong}).status_code == 429
    [told] = lockout_messages(member)
    assert told.channel == "sms" and told.recipient == member.phone


def test_wrong_reauthentication_codes_count_against_the_account(client, member, login_as, app):
    app.config["CODE_LOCKOUT_FAILURES"] = 2
    login_as(member)
    post(client, "/me/delete/code", {})
    code = code_sent_to(member.email, "reauth_code")
    data = {"code": wrong_for(code), "confirm": "y"}
    assert post(client, "/me/delete", data).status_code == 422
    assert post(client, "/me/delete", data).status_code == 429
    assert post(client, "/me/delete/code", {}).status_code == 303
    code = code_sent_to(member.email, "reauth_code")  # the lockout notice is newer
    response = post(client, "/me/delete", {"code": code, "confirm": "y"})
    assert response.status_code == 429
    assert len(lockout_messages(member)) == 1


def test_codes_typed_on_any_keyboard_are_accepted(client, app, member):
    for typed in ("{fw}", "{fw3} {fw_rest}", "{a}-{b}", " {a} {b} "):
        clock.freeze(clock.utcnow() + timedelta(seconds=1))
        signed_in = app.test_client()
        start_sign_in(signed_in, member.email)
        code = latest_code(member.email)
        full_width = "".join(chr(ord(ch) + 0xFEE0) for ch in code)  # "１２３４５６"
        entered = typed.format(fw=full_width, fw3=full_width[:3], fw_rest=full_width[3:],
                               a=code[:3], b=code[3:])
        response = post(signed_in, "/sign-in/code", {"code": entered})
        assert response.status_code == 303 and response.headers["Location"] == "/me", typed


def test_letters_in_a_code_are_not_ignored(client, member):
    start_sign_in(client, member.email)
    code = latest_code(member.email)
    assert post(client, "/sign-in/code", {"code": f"{code[:3]}x{code[3:]}"}).status_code == 422


def test_erasure_forgets_the_lockout(client, app):
    from consent_center.services.erasure import erase_member

    app.config["CODE_LOCKOUT_FAILURES"] = 2
    member = make_member()
    code = fail_codes(client, member, 1)
    assert post(client, "/sign-in/code", {"code": wrong_for(code)}).status_code == 429
    db.session.refresh(member)
    assert member.code_locked_until is not None
    erase_member(member, actor=None, reason="test")
    db.session.commit()
    db.session.refresh(member)
    assert (member.code_failures, member.code_failures_since, member.code_locked_until) == (
        0, None, None)


def test_an_unknown_address_locks_as_an_account_does(app):
    """Ten wrong codes must not tell an address with an account from one without."""
    import re

    app.config["SIGN_IN_RATE_LIMIT_IP"] = "100 per 10 minutes"  # both runs from one address
    known = make_member()

    def run(email: str) -> list:
        client = app.test_client()
        answers = []
        for _ in range(3):
            assert start_sign_in(client, email).status_code == 303
            code = code_sent_to(email, "sign_in_code") if email == known.email else "123456"
            for _ in range(4 if len(answers) < 8 else 2):
                response = post(client, "/sign-in/code", {"code": wrong_for(code)})
                answers.append(response.status_code)
        assert start_sign_in(client, email).status_code == 303
        code = code_sent_to(email, "sign_in_code") if email == known.email else "123456"
        response = post(client, "/sign-in/code", {"code": code})
        page = response.get_data(as_text=True)
        message = re.search(r'id="code-error">\s*<li>(.*?)</li>', page, re.S).group(1)
        return answers + [response.status_code, re.sub(r"until .*? Then", "until … Then", message)]

    assert run(known.email) == run("nobody@example.org") == [422] * 9 + [429, 429, (
        "Too many wrong codes were entered for this account. To protect it, no code is "
        "accepted until … Then ask for a new code.")]
