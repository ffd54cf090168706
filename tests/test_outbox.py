"""The outbox: written with its cause, at most once per dedupe key, retried until delivered or
declared dead; fan-outs enqueued set-wise; workers that crash lose nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from consent_center import clock
from consent_center.domain import NotificationStatus
from consent_center.extensions import db
from consent_center.models import FanOut, Member, Notification
from consent_center.notify.worker import drain
from consent_center.services.notifications import enqueue_notification, fan_out_progress
from consent_center.services.policies import publish_policy
from tests.conftest import make_member, make_policy, publish_notice
from tests.support.queries import count_queries
from tests.support.writes import nothing_written


def enqueue(member, n: int = 1, kind: str = "contact_ack") -> list[Notification]:
    rows = []
    for i in range(n):
        rows.append(
            enqueue_notification(
                member=member,
                channel="email",
                kind=kind,
                dedupe_key=f"test:{member.id}:{i}",
                recipient=member.email,
                locale="en",
                context={"sender_name": member.name, "message": f"message {i}"},
            )
        )
    db.session.commit()
    return rows


def statuses() -> list[str]:
    return list(db.session.scalars(select(Notification.status).order_by(Notification.id)))


def test_same_dedupe_key_never_writes_twice(app, member):
    first = enqueue(member)[0]
    again = enqueue(member)[0]
    assert first.id == again.id
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 1


def test_drain_delivers_over_smtp_exactly_once(app, member, smtp):
    enqueue(member, 3)
    assert drain() == {"sent": 3}
    assert len(smtp.wait_for(3)) == 3
    assert drain() == {}
    assert statuses() == ["sent"] * 3
    assert len(smtp.messages) == 3


def test_smtp_outage_then_recovery_delivers_each_once(app, member, smtp):
    enqueue(member, 4)
    smtp.stop()
    start = clock.utcnow()
    clock.freeze(start)
    assert drain() == {"pending": 4}
    rows = list(db.session.scalars(select(Notification)))
    assert all(r.attempts == 1 and r.next_attempt_at > start for r in rows)
    assert all("SMTP" in r.last_error for r in rows)
    assert drain() == {}  # not due yet: backing off
    smtp.start()
    clock.freeze(start + timedelta(hours=2))
    assert drain() == {"sent": 4}
    received = smtp.wait_for(4)
    assert len({m.message["Message-ID"] for m in received}) == 4 == len(smtp.messages)


def test_transient_failures_end_dead_after_max_attempts(app, member, smtp):
    app.config["NOTIFY_MAX_ATTEMPTS"] = 3
    enqueue(member, 1)
    smtp.stop()
    now = clock.utcnow()
    for i in range(3):
        clock.freeze(now + timedelta(days=i))
        drain()
    row = db.session.scalars(select(Notification)).one()
    assert (row.status, row.attempts) == ("dead", 3)


def test_backoff_grows_exponentially_with_jitter(app):
    from consent_center.notify.delivery import backoff_seconds

    app.config.update(NOTIFY_BACKOFF_BASE_SECONDS=10, NOTIFY_BACKOFF_MAX_SECONDS=1000)
    for attempts, ceiling in ((1, 10), (2, 20), (3, 40), (10, 1000)):
        values = {backoff_seconds(attempts) for _ in range(20)}
        assert all(ceiling / 2 <= v <= ceiling for v in values)
        assert len(values) > 1


def test_permanent_smtp_failure_is_failed_not_retried(app, member, smtp):
    smtp.reject_recipient(member.email, code=550)
    enqueue(member, 1)
    assert drain() == {"failed": 1}
    clock.freeze(clock.utcnow() + timedelta(days=1))
    assert drain() == {}
    assert statuses() == ["failed"]


def test_twilio_500_then_ok_delivers_once(app, twilio):
    member = make_member(phone="+8613800138000", phone_verified_at=clock.utcnow())
    enqueue_notification(
        member=member,
        channel="sms",
        kind="policy_notice",
        dedupe_key="sms:1",
        recipient=member.phone,
        locale="en",
        context={"number": 2, "effective_at": clock.utcnow()},
    )
    db.session.commit()
    twilio.fail_next(status=500)
    start = clock.utcnow()
    clock.freeze(start)
    assert drain() == {"pending": 1}
    clock.freeze(start + timedelta(hours=2))
    assert drain() == {"sent": 1}
    assert len(twilio.messages) == 1
    row = db.session.scalars(select(Notification)).one()
    assert row.provider_id == twilio.messages[0]["sid"]


def test_twilio_21610_records_the_opt_out(app, twilio):
    member = make_member(phone="+8613800138000", phone_verified_at=clock.utcnow(), notify_sms=True)
    enqueue_notification(
        member=member,
        channel="sms",
        kind="policy_notice",
        dedupe_key="sms:1",
        recipient=member.phone,
        locale="en",
        context={"number": 2, "effective_at": clock.utcnow()},
    )
    db.session.commit()
    twilio.fail_next(status=400, code=21610)
    assert drain() == {"failed": 1}
    db.session.refresh(member)
    assert member.sms_opted_out_at is not None


def test_expired_lease_is_reclaimed(app, member, smtp):
    """A worker that died mid-send leaves rows `sending`; after the lease they are due."""
    from consent_center.notify.delivery import claim_due

    enqueue(member, 2)
    start = clock.utcnow()
    clock.freeze(start)
    claimed = claim_due(10)  # ... and then the worker "dies"
    assert len(claimed) == 2 and statuses() == ["sending", "sending"]
    assert drain() == {}  # still leased
    clock.freeze(start + timedelta(seconds=app.config["NOTIFY_LEASE_SECONDS"] + 1))
    assert drain() == {"sent": 2}
    assert len(smtp.wait_for(2)) == 2


def test_policy_fan_out_is_set_wise_and_idempotent(app, smtp):
    make_policy()
    for i in range(30):
        make_member(locale="zh_Hans_CN" if i % 2 else "en")
    make_member(notify_email=False)
    make_member(phone="+8613800138001", phone_verified_at=clock.utcnow(), notify_sms=True)
    make_member(
        phone="+8613800138002",
        phone_verified_at=clock.utcnow(),
        notify_sms=True,
        sms_opted_out_at=clock.utcnow(),
    )
    make_member(status="erased", email=None)
    with count_queries() as statements:
        version = publish_policy(
            actor=None,
            title="Privacy policy",
            body_md="# P\n\nNew.\n",
            summary="Clearer",
            effective_at=clock.utcnow() + timedelta(days=8),
            config=app.config,
        )
        db.session.commit()
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO NOTIFICATION ")]
    assert len(inserts) == 1  # both channels, whatever the number of members
    fan = db.session.scalars(select(FanOut)).one()
    assert fan.total == 32 + 1  # 32 emails (not the one who opted out) + 1 SMS
    counts = fan_out_progress(fan)
    assert counts["pending"] == 33
    # Re-running the fan-out for the same version adds nothing.
    from consent_center.services.policies import notify_policy_change

    assert notify_policy_change(version, None).id == fan.id
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 33
    assert drain()["sent"] == 33
    received = smtp.wait_for(32)
    zh = [m for m in received if "隐私政策" in m.message["Subject"]]
    assert len(zh) == 15
    sample = received[0].message
    assert sample["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/unsubscribe/" in sample["List-Unsubscribe"]


def test_erased_and_unapproved_members_get_no_policy_notice(app):
    make_policy()
    make_member(status="awaiting_guardian")
    make_member()
    publish_notice(app, summary="y")
    recipients = db.session.scalars(select(Notification.member_id)).all()
    active = db.session.scalars(select(Member.id).where(Member.status == "active")).all()
    assert recipients == active


@pytest.mark.parametrize("days", [6, 29])
def test_notice_period_is_enforced(app, days):
    from consent_center.services.errors import Invalid

    make_policy()
    with nothing_written(), pytest.raises(Invalid) as info:
        publish_policy(
            actor=None,
            title="P",
            body_md="x",
            summary="y",
            effective_at=clock.utcnow() + timedelta(days=days),
            changed_purposes=("advertising",) if days == 29 else (),
            config=app.config,
        )
    assert "effective_at" in info.value.field_errors
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 0


def test_sign_in_code_is_not_queued_behind_a_fan_out(client, app, smtp):
    """Codes go out from the request at once, even with thousands of notices waiting."""
    from tests.conftest import post

    make_policy()
    member = make_member()
    for _ in range(50):
        make_member()
    publish_notice(app, summary="y")
    post(client, "/sign-in", {"identifier": member.email})
    received = smtp.wait_for(1)
    assert (
        received[0].rcpt_tos == [member.email] and "sign-in code" in received[0].message["Subject"]
    )
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.status == NotificationStatus.PENDING)
        )
        == 51
    )


def test_workers_never_send_a_row_whose_secret_only_the_request_holds(app, member, smtp):
    """A sign-in code row holds a masked copy; a worker picking it up (racing the request
    that sends it) would mail "••••••". Only the request sends it; a failure is final."""
    from consent_center.notify.delivery import claim_due, deliver_now
    from consent_center.services.auth import request_sign_in_code

    code = request_sign_in_code(member.email)
    db.session.commit()
    assert claim_due(10) == []
    assert drain() == {}
    smtp.stop()
    row = db.session.get(Notification, code.notification_id)
    deliver_now([row], {row.id: code.outgoing})
    db.session.refresh(row)
    assert row.status == "failed"  # not retried with the masked text
    clock.freeze(clock.utcnow() + timedelta(hours=3))
    assert drain() == {}
