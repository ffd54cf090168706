"""Twilio webhooks: signatures (valid, tampered, missing, replayed), status callbacks in any
order, and inbound STOP / START / HELP."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from consent_center import clock
from consent_center.extensions import db
from consent_center.models import Notification
from tests.conftest import make_member
from tests.support.writes import nothing_written

TOKEN = "webhook-test-token"
BASE = "https://privacy.example.com"


@pytest.fixture
def signed(app, client):
    app.config.update(TWILIO_AUTH_TOKEN=TOKEN, PUBLIC_BASE_URL=BASE)

    def send(path: str, form: dict, *, signature: str | None = "auto", url: str | None = None):
        headers = {}
        if signature == "auto":
            signature = RequestValidator(TOKEN).compute_signature(url or BASE + path, form)
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        return client.post(path, data=form, headers=headers)

    return send


@pytest.fixture
def sms_row(app):
    member = make_member(phone="+8613800138000", phone_verified_at=clock.utcnow())
    row = Notification(
        member_id=member.id,
        channel="sms",
        kind="policy_notice",
        dedupe_key="x",
        recipient=member.phone,
        status="sent",
        provider_id="SM" + "a" * 32,
        body_text="hi",
    )
    db.session.add(row)
    db.session.commit()
    return row


def status_of(row) -> str:
    db.session.refresh(row)
    return row.status


def test_status_callback_records_delivery(signed, sms_row):
    response = signed(
        "/webhooks/twilio/status", {"MessageSid": sms_row.provider_id, "MessageStatus": "delivered"}
    )
    assert response.status_code == 200 and b"<Response/>" in response.data
    assert status_of(sms_row) == "delivered" and sms_row.delivered_at is not None


def test_out_of_order_and_repeated_callbacks_never_go_backwards(signed, sms_row):
    for status in ("delivered", "sent", "queued", "delivered"):
        assert (
            signed(
                "/webhooks/twilio/status",
                {"MessageSid": sms_row.provider_id, "MessageStatus": status},
            ).status_code
            == 200
        )
    assert status_of(sms_row) == "delivered"


def test_undelivered_callback_marks_failed_with_error(signed, sms_row):
    signed(
        "/webhooks/twilio/status",
        {"MessageSid": sms_row.provider_id, "MessageStatus": "undelivered", "ErrorCode": "30005"},
    )
    assert status_of(sms_row) == "failed" and "30005" in sms_row.last_error


@pytest.mark.parametrize("signature", [None, "bm90IGEgc2lnbmF0dXJl", ""])
def test_missing_or_wrong_signature_is_403(signed, sms_row, signature):
    with nothing_written():
        response = signed(
            "/webhooks/twilio/status",
            {"MessageSid": sms_row.provider_id, "MessageStatus": "delivered"},
            signature=signature,
        )
    assert response.status_code == 403
    assert status_of(sms_row) == "sent"


def test_tampered_body_is_403(signed, sms_row, app, client):
    form = {"MessageSid": sms_row.provider_id, "MessageStatus": "sent"}
    good = RequestValidator(TOKEN).compute_signature(BASE + "/webhooks/twilio/status", form)
    with nothing_written():
        response = client.post(
            "/webhooks/twilio/status",
            data=dict(form, MessageStatus="delivered"),
            headers={"X-Twilio-Signature": good},
        )
    assert response.status_code == 403


@pytest.mark.parametrize("signature", ["tampered", None])
def test_tampered_or_unsigned_inbound_stop_changes_nothing(signed, signature):
    member = make_member(phone="+8613800138000", phone_verified_at=clock.utcnow(), notify_sms=True)
    form = {"From": member.phone, "Body": "HELLO"}
    good = RequestValidator(TOKEN).compute_signature(BASE + "/webhooks/twilio/inbound", form)
    with nothing_written():
        response = signed(
            "/webhooks/twilio/inbound",
            dict(form, Body="STOP"),
            signature=good if signature == "tampered" else None,
        )
    assert response.status_code == 403


def test_signature_for_another_url_is_403(signed, sms_row):
    with nothing_written():
        response = signed(
            "/webhooks/twilio/status",
            {"MessageSid": sms_row.provider_id, "MessageStatus": "delivered"},
            url="https://evil.example/webhooks/twilio/status",
        )
    assert response.status_code == 403


def test_query_string_is_part_of_the_signed_url(signed, sms_row, app, client):
    form = {"MessageSid": sms_row.provider_id, "MessageStatus": "delivered"}
    path = "/webhooks/twilio/status?b=2&a=1"
    signature = RequestValidator(TOKEN).compute_signature(BASE + path, form)
    response = client.post(path, data=form, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200


def test_replayed_callback_is_harmless(signed, sms_row):
    form = {"MessageSid": sms_row.provider_id, "MessageStatus": "delivered"}
    for _ in range(3):
        assert signed("/webhooks/twilio/status", form).status_code == 200
    assert status_of(sms_row) == "delivered"


def test_without_a_configured_token_every_call_is_403(app, client):
    app.config["TWILIO_AUTH_TOKEN"] = None
    with nothing_written():
        response = client.post(
            "/webhooks/twilio/status",
            data={"MessageSid": "x"},
            headers={"X-Twilio-Signature": "abc"},
        )
    assert response.status_code == 403


@pytest.mark.parametrize("word", ["STOP", "stopall", "Unsubscribe", "CANCEL", "END", "QUIT"])
def test_stop_keywords_opt_out_of_sms(signed, app, word):
    member = make_member(phone="+8613800138000", phone_verified_at=clock.utcnow(), notify_sms=True)
    response = signed("/webhooks/twilio/inbound", {"From": member.phone, "Body": word})
    assert response.status_code == 200
    db.session.refresh(member)
    assert member.sms_opted_out_at is not None


def test_opt_out_type_field_is_honoured_and_start_opts_back_in(signed, app):
    member = make_member(phone="+8613800138000", phone_verified_at=clock.utcnow())
    signed(
        "/webhooks/twilio/inbound",
        {"From": member.phone, "Body": "please no", "OptOutType": "STOP"},
    )
    db.session.refresh(member)
    assert member.sms_opted_out_at is not None
    signed("/webhooks/twilio/inbound", {"From": member.phone, "Body": "START"})
    db.session.refresh(member)
    assert member.sms_opted_out_at is None


def test_help_gets_contact_details(signed, app):
    response = signed("/webhooks/twilio/inbound", {"From": "+447911123456", "Body": "HELP"})
    assert response.status_code == 200
    assert b"<Message>" in response.data and b"400-032-0988" in response.data


def test_opted_out_member_gets_no_more_sms(app, signed, client):
    from consent_center.services.notifications import enqueue_notification  # noqa: F401
    from tests.conftest import post

    member = make_member(phone="+8613800138000", phone_verified_at=clock.utcnow())
    signed("/webhooks/twilio/inbound", {"From": member.phone, "Body": "STOP"})
    post(client, "/sign-in", {"identifier": member.phone})
    assert (
        db.session.scalars(select(Notification).where(Notification.channel == "sms")).first()
        is None
    )
