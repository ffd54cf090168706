"""The outbox: written with its cause, at most once per dedupe key, retried until delivered or
declared dead; fan-outs enqueued set-wise; workers that crash lose nothing."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from consent_center import clock
from consent_center.extensions import db
from consent_center.models import FanOut, Member, Notification
from consent_center.notify.worker import drain
from consent_center.services.notifications import enqueue_notification, fan_out_progress
from consent_center.services.policies import publish_policy
from tests.conftest import make_member, make_policy, policy_texts, publish_notice
from tests.support.outbox import deliver
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
            texts=policy_texts("# P\n\nNew.\n", "Clearer", title="Privacy policy"),
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
            texts=policy_texts("x", "y", title="P"),
            effective_at=clock.utcnow() + timedelta(days=days),
            changed_purposes=("advertising",) if days == 29 else (),
            config=app.config,
        )
    assert "effective_at" in info.value.field_errors
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 0


def test_sign_in_code_is_delivered_ahead_of_a_fan_out(client, app, smtp):
    """The worker claims codes first, even with many notices waiting before them."""
    from tests.conftest import post

    make_policy()
    member = make_member()
    for _ in range(50):
        make_member()
    publish_notice(app, summary="y")
    post(client, "/sign-in", {"identifier": member.email})
    assert drain() == {"sent": 52}
    first = smtp.wait_for(52)[0]  # the code, though the 51 notices were written before it
    assert first.rcpt_tos == [member.email] and "sign-in code" in first.message["Subject"]


def code_in(message) -> str:
    return re.search(r"\b(\d{6})\b", message.get_body(("plain",)).get_content()).group(1)


def stored_values(row_id: int) -> str:
    """Every column of one outbox row as the database holds it."""
    row = db.session.execute(
        text("SELECT * FROM notification WHERE id = :id"), {"id": row_id}
    ).one()
    return " ".join(str(v) for v in row)


def test_the_request_sends_nothing_and_the_worker_sends_the_sealed_code(client, member, smtp):
    """No SMTP connection in the request, for a known or an unknown address; the row holds
    the code only sealed; the worker sends the real code and then deletes the sealed copy."""
    from tests.conftest import post

    assert post(client, "/sign-in", {"identifier": member.email}).status_code == 303
    other = client.application.test_client()
    assert post(other, "/sign-in", {"identifier": "nobody@example.org"}).status_code == 303
    assert smtp.connections == 0 and smtp.messages == []
    row = db.session.scalars(select(Notification)).one()  # none for the unknown address
    assert row.status == "pending" and row.secret and "••••••" in row.body_text
    before = stored_values(row.id)
    assert deliver() == {"sent": 1}
    [received] = smtp.wait_for(1)
    code = code_in(received.message)
    assert received.rcpt_tos == [member.email] and code not in before
    db.session.refresh(row)
    assert row.status == "sent" and row.secret is None
    assert code not in stored_values(row.id)


def test_an_expired_code_is_never_sent(client, member, smtp):
    from tests.conftest import post

    start = clock.utcnow()
    clock.freeze(start)
    post(client, "/sign-in", {"identifier": member.email})
    clock.freeze(start + timedelta(minutes=10))
    assert deliver() == {"dead": 1}
    row = db.session.scalars(select(Notification)).one()
    assert (row.status, row.last_error, row.secret) == ("dead", "expired", None)
    assert smtp.connections == 0 and smtp.messages == []


def test_a_code_outage_is_retried_with_the_sealed_text_until_it_expires(client, member, smtp):
    from tests.conftest import post

    start = clock.utcnow()
    clock.freeze(start)
    post(client, "/sign-in", {"identifier": member.email})
    smtp.stop()
    assert deliver() == {"pending": 1}
    row = db.session.scalars(select(Notification)).one()
    assert row.secret is not None  # kept for the retry
    smtp.start()
    clock.freeze(start + timedelta(seconds=31))  # past the first backoff (at most 30 s)
    assert deliver() == {"sent": 1}
    assert "••" not in smtp.wait_for(1)[0].message.get_body(("plain",)).get_content()
    db.session.refresh(row)
    assert row.secret is None


def test_a_code_without_a_readable_sealed_message_is_never_sent(app, client, member, smtp):
    """A masked copy is no message: a secret kind with no sealed text, or one sealed under
    another SECRET_KEY, is settled as dead without a send."""
    from tests.conftest import post

    post(client, "/sign-in", {"identifier": member.email})
    post(app.test_client(), "/sign-in", {"identifier": member.email})
    first, second = db.session.scalars(select(Notification).order_by(Notification.id))
    first.secret = None
    db.session.commit()
    app.config["SECRET_KEY"] = "another-secret-key-of-at-least-32-chars"
    assert deliver() == {"dead": 2}
    assert smtp.connections == 0
    assert {r.last_error for r in db.session.scalars(select(Notification))} == {
        "no sealed message",
        "sealed under another SECRET_KEY",
    }


# PostgreSQL only: `pg_terminate_backend` is how the database cuts a connection.
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_round_whose_database_connection_was_cut_does_not_end_the_worker(
    app, member, smtp, backend, monkeypatch
):
    """The soak found it: after `pg_terminate_backend` even the round's rollback raised, which
    ended the worker's main loop while its code lane kept the process alive, so nothing but
    codes was ever delivered again. The round must survive, and the next one deliver."""
    from consent_center.notify import worker as worker_module
    from consent_center.notify.delivery import claim_due

    enqueue(member, 2)
    worker = worker_module.Worker(poll_seconds=0.01)

    def cut_mid_round(*args, **kwargs):
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with db.engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        raise RuntimeError("a send failed while the database cut the round's connection")

    monkeypatch.setattr(worker_module, "drain", cut_mid_round)
    worker._round(claim_due)
    monkeypatch.undo()
    worker._round(claim_due)
    assert statuses() == ["sent", "sent"]
    assert len(smtp.wait_for(2)) == 2
