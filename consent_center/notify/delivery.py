"""Delivering outbox rows: claim, send through a transport, record each outcome at once.

Functions here are delivery boundaries (like a request or a CLI command): they commit.
Each outcome is committed as soon as the provider answers, so a crash can repeat at most
the one message in flight; that message keeps the same Message-ID (email) on a retry.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, or_, select, text, update

from ..clock import utcnow
from ..domain import Channel, NotificationStatus
from ..extensions import db
from ..models import Notification, NotificationContent
from ..models.notification import TO_DELIVER
from .base import DeliveryResult, Outgoing

# Kinds whose recipient and text are deleted as soon as they are sent (webhook bodies name
# members; the change_event table keeps the facts).
SCRUB_AFTER_SEND = {"deletion_completed", "guardian_refused", "consent.changed", "member.erased"}

# Kinds whose real text (a one-time code, an approval link) exists only in the request that
# made them; the row holds a masked copy. Only that request sends them (`deliver_now`): a
# worker must never pick one up, and a failed one is not retried (the person asks again).
SECRET_KINDS = frozenset(
    {"sign_in_code", "verify_contact", "reauth_code", "guardian_code", "guardian_invite"}
)


@dataclass(frozen=True)
class Claimed:
    """A row this worker holds a lease on, as plain values (no ORM state to reload)."""

    id: int
    public_id: str
    member_id: int | None
    channel: str
    kind: str
    recipient: str | None
    attempts: int
    subject: str | None
    body_text: str | None
    body_html: str | None
    content_id: int | None


_CLAIM_COLUMNS = (
    Notification.id,
    Notification.public_id,
    Notification.member_id,
    Notification.channel,
    Notification.kind,
    Notification.recipient,
    Notification.attempts,
    Notification.subject,
    Notification.body_text,
    Notification.body_html,
    Notification.content_id,
)


def transport_for(channel: str):
    """The configured transport for a channel: real when configured, else the dev mailbox."""
    config = current_app.config
    if channel == Channel.WEBHOOK:
        from .webhook import WebhookTransport

        return WebhookTransport()
    if channel == Channel.EMAIL and config.get("MAIL_SERVER"):
        from .email import SmtpTransport

        return SmtpTransport()
    if (
        channel == Channel.SMS
        and config.get("TWILIO_ACCOUNT_SID")
        and config.get("TWILIO_AUTH_TOKEN")
    ):
        from .sms import TwilioTransport

        return TwilioTransport()
    from .dev import DevMailboxTransport

    return DevMailboxTransport()


def unsubscribe_url(public_id: str) -> str:
    base = (current_app.config.get("PUBLIC_BASE_URL") or "").rstrip("/")
    return f"{base}/unsubscribe/{public_id}"


def unsubscribe_headers(public_id: str) -> dict[str, str]:
    """RFC 8058 one-click unsubscribe headers for a non-essential email."""
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(public_id)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def _outgoing(row: Claimed, contents: dict[int, NotificationContent]) -> Outgoing:
    subject, text, html = row.subject, row.body_text, row.body_html
    if row.content_id is not None:
        content = contents[row.content_id]
        subject, text, html = content.subject, content.body_text, content.body_html
        if html is not None:
            html = html.replace("__UNSUBSCRIBE_URL__", unsubscribe_url(row.public_id))
        text = text.replace("__UNSUBSCRIBE_URL__", unsubscribe_url(row.public_id))
    headers = {}
    if row.channel == Channel.EMAIL and row.kind in current_app.config["UNSUBSCRIBABLE_KINDS"]:
        headers = unsubscribe_headers(row.public_id)
    return Outgoing(
        notification_id=row.id,
        public_id=row.public_id,
        channel=row.channel,
        kind=row.kind,
        recipient=row.recipient or "",
        subject=subject,
        text=text or "",
        html=html,
        headers=headers,
    )


def backoff_seconds(attempts: int) -> float:
    """Exponential backoff with jitter: between half and all of base * 2^(attempts-1)."""
    base = current_app.config["NOTIFY_BACKOFF_BASE_SECONDS"]
    cap = current_app.config["NOTIFY_BACKOFF_MAX_SECONDS"]
    ceiling = min(cap, base * 2 ** max(attempts - 1, 0))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def record_result(row: Claimed, result: DeliveryResult, conn=None) -> str:
    """Write one send's outcome on `conn` (default: the session), no commit; returns the new
    status. (An SMS opt-out the outcome implies is recorded by the caller: `record_opt_out`.)"""
    now = utcnow()
    values: dict = {"lease_until": None}
    if result.ok:
        values.update(
            status=NotificationStatus.SENT,
            sent_at=now,
            provider_id=result.provider_id,
            last_error=None,
        )
    else:
        values["last_error"] = (result.error or "unknown error")[:500]
        if not result.transient or row.kind in SECRET_KINDS:
            values["status"] = NotificationStatus.FAILED
        elif row.attempts >= current_app.config["NOTIFY_MAX_ATTEMPTS"]:
            values["status"] = NotificationStatus.DEAD
        else:
            values["status"] = NotificationStatus.PENDING
            values["next_attempt_at"] = now + timedelta(seconds=backoff_seconds(row.attempts))
    final = values["status"] in (
        NotificationStatus.SENT,
        NotificationStatus.FAILED,
        NotificationStatus.DEAD,
    )
    if row.kind in SCRUB_AFTER_SEND and final:
        # Addressed to an erased member's old contact: forget it once it is settled.
        values.update(recipient=None, subject=None, body_text=None, body_html=None)
    # Only the lease holder may record: a row re-claimed after our lease expired is not ours.
    table = Notification.__table__
    # A Core statement: the ORM's bulk-update machinery costs more than the round trip.
    (conn or db.session).execute(
        table.update()
        .where(
            table.c.id == row.id,
            table.c.status == NotificationStatus.SENDING,
            table.c.attempts == row.attempts,
        )
        .values(**values)
    )
    return values["status"]


def record_opt_out(member_id: int) -> None:
    """The provider says the recipient opted out (Twilio 21610): honour it from now on."""
    from ..services.members import record_sms_opt_out

    record_sms_opt_out(member_id, source="provider")
    db.session.commit()


@contextmanager
def outcome_connection():
    """A connection for recording outcomes, one short transaction per message.

    On PostgreSQL its commits return before the WAL reaches disk (synchronous_commit off). A
    worker crash cannot lose such a write (the server has it); only a crash of the database
    server itself within a fraction of a second could, and then the message is merely sent
    again after its lease, with the same Message-ID. That makes each outcome about four
    times cheaper to record.
    """
    conn = db.engine.connect()
    postgres = conn.dialect.name == "postgresql"
    try:
        if postgres:
            conn.exec_driver_sql("SET synchronous_commit TO off")
            conn.commit()
        yield conn
    finally:
        if postgres:
            conn.rollback()
            conn.exec_driver_sql("RESET synchronous_commit")
            conn.commit()
        conn.close()


def send_claimed(rows: list[Claimed], overrides: dict[int, Outgoing] | None = None) -> dict:
    """Send claimed rows per channel and commit each outcome as it comes; returns counts."""
    overrides = overrides or {}
    content_ids = {r.content_id for r in rows if r.content_id is not None}
    contents = {}
    if content_ids:
        contents = {
            c.id: c
            for c in db.session.scalars(
                select(NotificationContent).where(NotificationContent.id.in_(content_ids))
            )
        }
    counts: dict[str, int] = {}
    by_channel: dict[str, list[Claimed]] = {}
    for row in rows:
        by_channel.setdefault(row.channel, []).append(row)
    db.session.commit()  # hold no transaction open while talking to providers
    with outcome_connection() as conn:
        for channel, group in by_channel.items():
            messages = [overrides.get(r.id) or _outgoing(r, contents) for r in group]
            sent = transport_for(channel).send_each(messages)
            for row, result in zip(group, sent, strict=True):
                status = record_result(row, result, conn)
                conn.commit()
                if result.opted_out and row.member_id is not None:
                    record_opt_out(row.member_id)
                counts[status] = counts.get(status, 0) + 1
    return counts


def _claim(condition, limit: int | None) -> list[Claimed]:
    now = utcnow()
    lease = timedelta(seconds=current_app.config["NOTIFY_LEASE_SECONDS"])
    chosen = (
        select(Notification.id)
        .where(condition)
        .order_by(Notification.next_attempt_at, Notification.id)
    )
    if limit:
        chosen = chosen.limit(limit)
    # SKIP LOCKED lets workers on PostgreSQL claim disjoint rows in parallel (SQLite, whose
    # writers are serialised, ignores it).
    chosen = chosen.with_for_update(skip_locked=True)
    result = db.session.execute(
        update(Notification)
        .where(Notification.id.in_(chosen.scalar_subquery()))
        .values(
            status=NotificationStatus.SENDING,
            attempts=Notification.attempts + 1,
            lease_until=now + lease,
        )
        .returning(*_CLAIM_COLUMNS)
        .execution_options(synchronize_session=False)
    )
    rows = [Claimed(*r) for r in result.all()]
    db.session.commit()
    return sorted(rows, key=lambda r: r.id)


def due_condition():
    now = utcnow()
    return and_(
        # Implied by the rest, but spelled as the partial index's predicate so the claim walks
        # ix_notification_due in order (see models.notification.TO_DELIVER).
        text(TO_DELIVER),
        Notification.kind.not_in(SECRET_KINDS),
        or_(
            and_(
                Notification.status == NotificationStatus.PENDING,
                Notification.next_attempt_at <= now,
            ),
            # A worker died mid-send: its lease ran out, so the row is due again.
            and_(
                Notification.status == NotificationStatus.SENDING, Notification.lease_until < now
            ),
        ),
    )


def claim_due(batch_size: int) -> list[Claimed]:
    """Claim up to `batch_size` due rows for this worker and commit the claim."""
    from .webhook import in_order_condition

    return _claim(and_(due_condition(), in_order_condition()), batch_size)


def deliver_now(rows: Iterable[Notification], overrides: dict[int, Outgoing] | None = None):
    """Send freshly committed rows at once from the request that made them (sign-in codes),
    never queued behind a bulk fan-out. Claims them first, so no worker sends them too."""
    ids = [r.id for r in rows]
    if not ids:
        return {}
    claimed = _claim(
        and_(Notification.id.in_(ids), Notification.status == NotificationStatus.PENDING), None
    )
    return send_claimed(claimed, overrides)
