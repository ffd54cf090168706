"""Leases: a message is sent only while this worker holds its claim, and an outcome is
written only under that claim (two workers through slow receivers: test_worker_processes)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from consent_center import clock
from consent_center.domain import NotificationStatus
from consent_center.extensions import db
from consent_center.models import Notification
from consent_center.notify.base import DeliveryResult
from consent_center.notify.delivery import claim_due, record_result, send_claimed
from tests.test_outbox import enqueue


def rows() -> list[Notification]:
    db.session.expire_all()
    return list(db.session.scalars(select(Notification).order_by(Notification.id)))


def after_the_lease(app, start) -> None:
    clock.freeze(start + timedelta(seconds=app.config["NOTIFY_LEASE_SECONDS"] + 1))


def test_a_message_another_worker_took_over_is_left_to_it(app, member, smtp):
    """Our lease ran out: the row another worker re-claimed is skipped, unsent; the row nobody
    re-claimed is still only ours, and is renewed and sent."""
    first, second = enqueue(member, 2)
    start = clock.utcnow()
    clock.freeze(start)
    mine = claim_due(10)
    after_the_lease(app, start)
    [theirs] = claim_due(1)  # another worker, once our lease ran out
    assert theirs.id == first.id and theirs.attempts == 2
    assert send_claimed(mine) == {"lost": 1, "sent": 1}
    assert len(smtp.messages) == 1
    [message] = smtp.messages
    assert message.message["Message-ID"] == f"<{second.public_id}@localhost>"
    taken, sent = rows()
    assert (taken.status, taken.attempts, taken.sent_at) == (NotificationStatus.SENDING, 2, None)
    assert (sent.status, sent.attempts) == (NotificationStatus.SENT, 1)


def test_an_outcome_is_written_only_under_the_claim_that_sent_it(app, member):
    enqueue(member, 1)
    start = clock.utcnow()
    clock.freeze(start)
    [mine] = claim_due(10)
    after_the_lease(app, start)
    [theirs] = claim_due(10)
    assert record_result(mine, DeliveryResult(ok=True, provider_id="late")) is None
    db.session.commit()
    [row] = rows()
    assert (row.status, row.attempts, row.provider_id) == (NotificationStatus.SENDING, 2, None)
    assert record_result(theirs, DeliveryResult(ok=True, provider_id="p")) == "sent"
    db.session.commit()
    [row] = rows()
    assert (row.status, row.provider_id) == (NotificationStatus.SENT, "p")
