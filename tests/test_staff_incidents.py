"""Staff: security incident notices — both languages, a filtered audience with a count before
sending, a confirmed send through the fan-out, and what members receive."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from consent_center import clock
from consent_center.domain import Actor, Method
from consent_center.extensions import db
from consent_center.models import AuditEvent, FanOut, IncidentNotice, Notification
from consent_center.notify.worker import drain
from consent_center.services.consents import set_consent
from consent_center.services.erasure import erase_member
from tests.conftest import make_member, make_policy, post
from tests.support.staff import local_midnight, make_staff
from tests.support.writes import nothing_written

FIELDS = ("what_happened", "data_involved", "our_response", "member_actions", "contact")
EN = {
    "what_happened": "On 1 March an attacker read part of our member database.",
    "data_involved": "Names and email addresses; no passwords (we hold none).",
    "our_response": "We closed the hole and told the regulator.",
    "member_actions": "Beware of emails that ask you to sign in.",
    "contact": "Customer service: 400-032-0988",
}
ZH = {
    "what_happened": "3月1日，攻击者读取了部分会员数据库。",
    "data_involved": "姓名和电子邮箱地址；不含密码（我们不保存密码）。",
    "our_response": "我们已修复漏洞并已报告监管机构。",
    "member_actions": "请警惕要求您登录的邮件。",
    "contact": "客服电话：400-032-0988",
}
CUTOFF = date(2026, 2, 1)


def notice_form(**audience) -> dict:
    data = {f"en_{k}": v for k, v in EN.items()} | {f"zh_{k}": v for k, v in ZH.items()}
    data.update({"status": "", "registered_after": "", "registered_before": "", "purpose": ""})
    data.update(audience)
    return data


@pytest.fixture
def staff(app):
    return make_staff(created_at=local_midnight(date(2025, 1, 1)))


@pytest.fixture
def crowd(app, staff):
    """Members registered before and after CUTOFF, with different choices."""
    make_policy()
    clock.freeze(local_midnight(date(2026, 3, 2)))
    before = local_midnight(CUTOFF) - timedelta(days=3)
    after = local_midnight(CUTOFF) + timedelta(days=3)
    people = {
        "old_en": make_member(created_at=before),
        "old_zh_no_policy_email": make_member(
            created_at=before, locale="zh_Hans_CN", notify_email=False
        ),
        "old_sms": make_member(
            created_at=before,
            phone="+8613800138000",
            phone_verified_at=before,
            notify_sms=True,
        ),
        "old_sms_stopped": make_member(
            created_at=before,
            phone="+8613800138001",
            phone_verified_at=before,
            notify_sms=True,
            sms_opted_out_at=before,
        ),
        "old_minor": make_member(created_at=before, status="awaiting_guardian"),
        "new_ads": make_member(created_at=after),
        "new_plain": make_member(created_at=after),
        "old_erased": make_member(created_at=before),
    }
    set_consent(people["new_ads"], "advertising", True, actor=Actor.MEMBER, method=Method.FORM)
    erase_member(people["old_erased"], actor=staff, reason="test")
    db.session.commit()
    return people


def recipients(fan: FanOut) -> set[tuple[int, str]]:
    return set(
        db.session.execute(
            select(Notification.member_id, Notification.channel).where(
                Notification.fan_out_id == fan.id
            )
        ).all()
    )


def test_compose_needs_both_languages(client, login_as, staff):
    login_as(staff)
    page = client.get("/staff/incidents/new").get_data(as_text=True)
    assert '<fieldset class="group" lang="en">' in page
    assert '<fieldset class="group" lang="zh-Hans">' in page
    data = notice_form()
    data["zh_our_response"] = " "
    with nothing_written():
        response = post(client, "/staff/incidents/new", data)
    assert response.status_code == 422
    assert b"Write this part in this language too." in response.data
    assert db.session.scalars(select(IncidentNotice)).first() is None


def test_filtered_notice_preview_confirm_send(client, login_as, staff, crowd, smtp):
    login_as(staff)
    response = post(
        client, "/staff/incidents/new", notice_form(registered_before=CUTOFF.isoformat())
    )
    assert response.status_code == 303
    incident = db.session.scalars(select(IncidentNotice)).one()
    assert response.headers["Location"].endswith(f"/staff/incidents/{incident.public_id}")

    preview = client.get(f"/staff/incidents/{incident.public_id}").get_data(as_text=True)
    # Registered before the cutoff and not erased: old_en, old_zh, old_sms, old_sms_stopped,
    # old_minor and the staff member; by email all six, by SMS only old_sms.
    assert "6 members match" in preview and "6 by email, 1 by text message." in preview
    assert EN["what_happened"] in preview and ZH["what_happened"] in preview
    assert "Send to 6 members" in preview

    url = f"/staff/incidents/{incident.public_id}/send"
    with nothing_written():
        unconfirmed = post(client, url, {})
    assert unconfirmed.status_code == 422 and b"Tick this box" in unconfirmed.data
    assert db.session.scalars(select(FanOut)).first() is None

    sent = post(client, url, {"confirm": "y"})
    assert sent.status_code == 303
    fan = db.session.scalars(select(FanOut)).one()
    assert sent.headers["Location"].endswith(f"/staff/fan-outs/{fan.public_id}")
    assert fan.kind == "incident_notice" and fan.total == 7
    expected = {(crowd[k].id, "email") for k in crowd if k.startswith("old_") and k != "old_erased"}
    expected |= {(staff.id, "email"), (crowd["old_sms"].id, "sms")}
    assert recipients(fan) == expected

    db.session.refresh(incident)
    assert incident.sent_at is not None and incident.fan_out_id == fan.id
    audit = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "incident.sent")).one()
    assert audit.actor_member_id == staff.id and audit.details["total"] == 7

    # Each member reads their own language; there is no unsubscribe link.
    drain()
    mail = {m.rcpt_tos[0]: m.message for m in smtp.wait_for(6)}
    zh_body = mail[crowd["old_zh_no_policy_email"].email].get_body(("plain",)).get_content()
    assert ZH["what_happened"] in zh_body and EN["what_happened"] not in zh_body
    en_mail = mail[crowd["old_en"].email]
    assert EN["member_actions"] in en_mail.get_body(("plain",)).get_content()
    assert "List-Unsubscribe" not in en_mail

    # It is in the member's message history.
    login_as(crowd["old_en"])
    history = client.get("/me/notifications").get_data(as_text=True)
    assert "Security incident notice" in history


def test_notice_to_members_with_a_purpose(client, login_as, staff, crowd):
    login_as(staff)
    post(client, "/staff/incidents/new", notice_form(purpose="advertising"))
    incident = db.session.scalars(select(IncidentNotice)).one()
    post(client, f"/staff/incidents/{incident.public_id}/send", {"confirm": "y"})
    fan = db.session.scalars(select(FanOut)).one()
    assert recipients(fan) == {(crowd["new_ads"].id, "email")}


def test_notice_by_status_and_registration_window(client, login_as, staff, crowd):
    login_as(staff)
    data = notice_form(status="awaiting_guardian")
    post(client, "/staff/incidents/new", data)
    incident = db.session.scalars(select(IncidentNotice)).one()
    page = client.get(f"/staff/incidents/{incident.public_id}").get_data(as_text=True)
    assert "1 member matches" in page
    post(
        client,
        f"/staff/incidents/{incident.public_id}/edit",
        notice_form(registered_after=CUTOFF.isoformat()),
    )
    page = client.get(f"/staff/incidents/{incident.public_id}").get_data(as_text=True)
    assert "2 members match" in page  # new_ads and new_plain
    with nothing_written():
        bad = post(
            client,
            f"/staff/incidents/{incident.public_id}/edit",
            notice_form(registered_after="2026-02-10", registered_before="2026-02-01"),
        )
    assert bad.status_code == 422


def test_sent_notice_never_changes(client, login_as, staff, crowd):
    login_as(staff)
    post(client, "/staff/incidents/new", notice_form(purpose="advertising"))
    incident = db.session.scalars(select(IncidentNotice)).one()
    base = f"/staff/incidents/{incident.public_id}"
    assert client.get(f"{base}/edit").status_code == 200
    assert post(client, f"{base}/send", {"confirm": "y"}).status_code == 303
    with nothing_written():
        assert client.get(f"{base}/edit").status_code == 409
        assert post(client, f"{base}/edit", notice_form()).status_code == 409
        assert post(client, f"{base}/send", {"confirm": "y"}).status_code == 409
    assert db.session.scalar(select(db.func.count()).select_from(FanOut)) == 1
    listing = client.get("/staff/incidents").get_data(as_text=True)
    assert "Sent" in listing and EN["what_happened"][:40] in listing
