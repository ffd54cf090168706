"""Applying sends to outbox rows: claim, send through a transport, record the outcome.

Functions here are delivery boundaries (like a request or a CLI command): they commit.
"""

from __future__ import annotations

import random
from datetime import timedelta

from flask import current_app
from sqlalchemy import or_, select

from ..clock import utcnow
from ..domain import Channel, NotificationStatus
from ..extensions import db
from ..models import Notification
from .base import DeliveryResult, Outgoing


def transport_for(channel: str):
    """The configured transport for a channel: real when configured, else the dev mailbox."""
    config = current_app.config
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


def outgoing_from_row(row: Notification) -> Outgoing:
    headers = {}
    if row.kind in current_app.config.get("UNSUBSCRIBABLE_KINDS", ()):
        headers = unsubscribe_headers(row)
    return Outgoing(
        notification_id=row.id,
        public_id=row.public_id,
        channel=row.channel,
        kind=row.kind,
        recipient=row.recipient or "",
        subject=row.subject,
        text=row.body_text or "",
        html=row.body_html,
        headers=headers,
    )


def unsubscribe_headers(row: Notification) -> dict[str, str]:
    """RFC 8058 one-click unsubscribe headers for a non-essential email."""
    base = (current_app.config.get("PUBLIC_BASE_URL") or "").rstrip("/")
    url = f"{base}/unsubscribe/{row.public_id}"
    return {
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def backoff_seconds(attempts: int) -> float:
    """Exponential backoff with full jitter: up to base * 2^(attempts-1), capped."""
    base = current_app.config.get("NOTIFY_BACKOFF_BASE_SECONDS", 30)
    cap = current_app.config.get("NOTIFY_BACKOFF_MAX_SECONDS", 3600)
    ceiling = min(cap, base * 2 ** max(attempts - 1, 0))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def apply_result(row: Notification, result: DeliveryResult) -> None:
    """Record the outcome of one send on its row (no commit)."""
    now = utcnow()
    row.lease_until = None
    if result.ok:
        row.status = NotificationStatus.SENT
        row.sent_at = now
        row.provider_id = result.provider_id
        row.last_error = None
        return
    row.last_error = (result.error or "unknown error")[:500]
    if result.opted_out and row.member_id is not None:
        from ..services.members import record_sms_opt_out

        record_sms_opt_out(row.member_id, source="provider")
    if not result.transient:
        row.status = NotificationStatus.FAILED
    elif row.attempts >= current_app.config.get("NOTIFY_MAX_ATTEMPTS", 8):
        row.status = NotificationStatus.DEAD
    else:
        row.status = NotificationStatus.PENDING
        row.next_attempt_at = now + timedelta(seconds=backoff_seconds(row.attempts))


def send_claimed(rows: list[Notification], overrides: dict[int, Outgoing] | None = None) -> None:
    """Send rows already marked `sending` (grouped per channel) and record each outcome."""
    overrides = overrides or {}
    by_channel: dict[str, list[Notification]] = {}
    for row in rows:
        by_channel.setdefault(row.channel, []).append(row)
    for channel, group in by_channel.items():
        messages = [overrides.get(r.id) or outgoing_from_row(r) for r in group]
        results = transport_for(channel).send_batch(messages)
        for row, result in zip(group, results, strict=True):
            apply_result(row, result)


def deliver_now(rows: list[Notification], overrides: dict[int, Outgoing] | None = None) -> None:
    """Send freshly committed rows at once, from the request that made them (sign-in codes).

    Marks them `sending` and commits first, so a worker never picks them up as well.
    """
    now = utcnow()
    lease = timedelta(seconds=current_app.config.get("NOTIFY_LEASE_SECONDS", 120))
    claimed = []
    for row in rows:
        if row.status != NotificationStatus.PENDING:
            continue
        row.status = NotificationStatus.SENDING
        row.attempts += 1
        row.lease_until = now + lease
        claimed.append(row)
    db.session.commit()
    if claimed:
        send_claimed(claimed, overrides)
        db.session.commit()


def claim_due(batch_size: int) -> list[Notification]:
    """Claim up to `batch_size` due rows for this worker and commit the claim.

    Rows are due when pending and their time has come, or when a worker's lease on them
    expired (it crashed mid-send). On PostgreSQL, `SKIP LOCKED` lets workers run in parallel.
    """
    now = utcnow()
    lease = timedelta(seconds=current_app.config.get("NOTIFY_LEASE_SECONDS", 120))
    rows = list(
        db.session.scalars(
            select(Notification)
            .where(
                or_(
                    (Notification.status == NotificationStatus.PENDING)
                    & (Notification.next_attempt_at <= now),
                    (Notification.status == NotificationStatus.SENDING)
                    & (Notification.lease_until < now),
                )
            )
            .order_by(Notification.next_attempt_at, Notification.id)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
    )
    for row in rows:
        row.status = NotificationStatus.SENDING
        row.attempts += 1
        row.lease_until = now + lease
    db.session.commit()
    return rows
