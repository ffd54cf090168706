"""Email over real SMTP (Flask-Mail) and SMS through the real twilio SDK, end to end."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from consent_center.extensions import db
from consent_center.models import Notification
from consent_center.notify.base import Outgoing
from consent_center.notify.email import SmtpTransport
from consent_center.notify.sms import TwilioTransport
from tests.conftest import make_member, post
from tests.support.outbox import deliver


def outgoing(channel: str, to: str, n: int = 1, **kw) -> Outgoing:
    return Outgoing(
        notification_id=n,
        public_id=f"p{n}",
        channel=channel,
        kind="test",
        recipient=to,
        subject=kw.get("subject", "Hello"),
        text=kw.get("text", "Hi"),
        html=kw.get("html"),
        headers=kw.get("headers", {}),
    )


def test_sign_in_code_goes_over_real_smtp(client, smtp):
    member = make_member(email="smtp.member@example.org", locale="zh_Hans_CN")
    post(client, "/sign-in", {"identifier": member.email})
    assert smtp.messages == []  # the request sent nothing: the worker does
    assert deliver() == {"sent": 1}
    received = smtp.wait_for(1)[0]
    assert received.rcpt_tos == ["smtp.member@example.org"]
    msg = received.message
    assert "验证码" in msg["Subject"]
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    code = re.search(r"(\d{6})", text).group(1)
    assert code in html and "aftersale@autooltech.com" in text
    row = db.session.scalars(select(Notification)).one()
    assert row.status == "sent" and row.provider_id == msg["Message-ID"]
    assert code not in row.body_text
    # The code from the real email signs in.
    assert post(client, "/sign-in/code", {"code": code}).status_code == 303


def test_smtp_batch_survives_one_bad_recipient(app, smtp):
    smtp.reject_recipient("bad@example.org", code=550)
    batch = [
        outgoing("email", "a@example.org", 1),
        outgoing("email", "bad@example.org", 2),
        outgoing("email", "c@example.org", 3),
    ]
    results = list(SmtpTransport().send_each(batch))
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].transient is False
    assert sorted(m.rcpt_tos[0] for m in smtp.wait_for(2)) == ["a@example.org", "c@example.org"]


def test_smtp_temporary_failure_is_transient(app, smtp):
    smtp.fail_next(1, code=451)
    results = list(
        SmtpTransport().send_each(
            [outgoing("email", "a@example.org", 1), outgoing("email", "b@example.org", 2)]
        )
    )
    assert results[0].ok is False and results[0].transient is True
    assert results[1].ok is True


def test_smtp_server_down_is_transient_for_the_whole_batch(app, smtp):
    smtp.stop()
    results = list(
        SmtpTransport().send_each(
            [outgoing("email", "a@example.org", 1), outgoing("email", "b@example.org", 2)]
        )
    )
    assert [(r.ok, r.transient) for r in results] == [(False, True), (False, True)]


def test_unsubscribe_headers_are_sent(app, smtp):
    headers = {
        "List-Unsubscribe": "<https://x.example/unsubscribe/p1>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    list(SmtpTransport().send_each([outgoing("email", "a@example.org", headers=headers)]))
    msg = smtp.wait_for(1)[0].message
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_sign_in_code_by_sms_through_the_twilio_sdk(client, twilio, app):
    from consent_center import clock

    app.config["PUBLIC_BASE_URL"] = "https://privacy.example.com"
    clock.freeze(clock.utcnow())  # the provider is told what is left of the code's 10 minutes
    make_member(phone="+8613800138000", phone_verified_at=clock.utcnow())
    post(client, "/sign-in", {"identifier": "+8613800138000"})
    assert deliver() == {"sent": 1}
    sent = twilio.wait_for(1)[0]
    assert sent["to"] == "+8613800138000" and sent["from_"] == "+15005550006"
    assert sent["status_callback"] == "https://privacy.example.com/webhooks/twilio/status"
    assert sent["form"].get("ValidityPeriod") in ("600", ["600"])
    assert re.search(r"\d{6}", sent["body"]) and len(sent["body"]) <= 160
    row = db.session.scalars(select(Notification)).one()
    assert row.status == "sent" and row.provider_id == sent["sid"]


@pytest.mark.parametrize(
    ("status", "code", "transient", "opted_out"),
    [
        (429, 20429, True, False),
        (500, None, True, False),
        (400, 21211, False, False),
        (400, 21610, False, True),
        (400, 21614, False, False),
    ],
)
def test_twilio_failures_are_classified(app, twilio, status, code, transient, opted_out):
    twilio.fail_next(status=status, code=code)
    result = list(TwilioTransport().send_each([outgoing("sms", "+8613800138000")]))[0]
    assert (result.ok, result.transient, result.opted_out) == (False, transient, opted_out)


def test_twilio_timeout_is_transient(app, twilio):
    app.config["TWILIO_TIMEOUT"] = 0.5
    twilio.hang_next(1.5)
    result = list(TwilioTransport().send_each([outgoing("sms", "+8613800138000")]))[0]
    assert (result.ok, result.transient) == (False, True)
    twilio.wait_for_scripts()


@pytest.mark.parametrize("bypassed", [False, True])
def test_twilio_goes_through_the_proxy_the_environment_names(app, twilio, monkeypatch, bypassed):
    # The stand-in plays the proxy: requests sends it the absolute URL of the API's host,
    # which does not resolve, so the message arrives only if the proxy was used.
    app.config["TWILIO_API_BASE_URL"] = "http://api.twilio.invalid"
    monkeypatch.setenv("HTTP_PROXY", twilio.base_url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("NO_PROXY", "api.twilio.invalid" if bypassed else "")
    results = list(
        TwilioTransport().send_each(
            [outgoing("sms", "+8613800138000", 1), outgoing("sms", "+8613800138001", 2)]
        )
    )
    if bypassed:
        assert [(r.ok, r.transient) for r in results] == [(False, True), (False, True)]
        assert twilio.messages == []
    else:
        assert [r.ok for r in results] == [True, True]
        assert [m["to"] for m in twilio.wait_for(2)] == ["+8613800138000", "+8613800138001"]


def test_email_with_a_line_break_in_a_header_is_refused_unsent(app, smtp):
    results = list(
        SmtpTransport().send_each(
            [
                outgoing("email", "a@example.org", 1, subject="Hello\nBcc: x@example.org"),
                outgoing("email", "b@example.org", 2, headers={"X-Note": "a\r\nBcc: x"}),
                outgoing("email", "c@example.org", 3, subject="中文主题", html="<p>Hi</p>"),
            ]
        )
    )
    assert [(r.ok, r.transient) for r in results] == [(False, False), (False, False), (True, False)]
    [received] = smtp.wait_for(1)
    assert received.rcpt_tos == ["c@example.org"] and received.message["Subject"] == "中文主题"
    assert received.message.get_body(("html",)).get_content() == "<p>Hi</p>"
    assert received.message.get_body(("plain",)).get_content() == "Hi"
    assert received.message["Message-ID"] == results[2].provider_id
