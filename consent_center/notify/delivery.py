"""Delivering outbox rows: claim, send through a transport, record each outcome at once.

Functions here are delivery boundaries (like a request or a CLI command): they commit.
Each outcome is committed as soon as the provider answers, so a crash can repeat at most
the one message in flight; that message keeps the same Message-ID (email) on a retry.

A claim is a lease: the row is this worker's until `lease_until`, and each claim bumps
`attempts`, which then names the holder (a fencing token). A message is sent only after its
lease was renewed under that token just before the send, the whole batch's leases are kept
alive by a heartbeat while the worker works through it, and the outcome is written only under
the same token. So a slow receiver never lets a second worker send the message again; only a
worker that died (and stopped renewing) gives its rows up, after one lease.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, or_, select, text, tuple_, update
from sqlalchemy.exc import SQLAlchemyError

from ..clock import utcnow
from ..domain import Channel, NotificationStatus
from ..extensions import db
from ..models import Notification, NotificationContent
from ..models.notification import TO_DELIVER
from .base import DeliveryResult, Outgoing

log = logging.getLogger("consent_center.notify")

# Kinds whose recipient and text are deleted as soon as they are sent (webhook bodies name
# members; the change_event table keeps the facts).
SCRUB_AFTER_SEND = {"deletion_completed", "consent.changed", "member.erased"}

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


def record_result(row: Claimed, result: DeliveryResult, conn=None) -> str | None:
    """Write one send's outcome on `conn` (default: the session), no commit; returns the new
    status, or None when the row is no longer this claim's (another worker re-claimed it).
    (An SMS opt-out the outcome implies is recorded by the caller: `record_opt_out`.)"""
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
    # The token (attempts) is enough: a lease that ran out but that nobody re-claimed is
    # still only ours, and recording it stops a pointless second send.
    written = (conn or db.session).execute(
        table.update()
        .where(
            table.c.id == row.id,
            table.c.status == NotificationStatus.SENDING,
            table.c.attempts == row.attempts,
        )
        .values(**values)
    )
    return values["status"] if written.rowcount == 1 else None


def _lease_until():
    return utcnow() + timedelta(seconds=current_app.config["NOTIFY_LEASE_SECONDS"])


def renew_leases(conn, held: dict[int, int], until) -> set[int]:
    """Extend to `until` the leases of the rows in `held` (id -> attempts at our claim) that
    are still ours; no commit. Returns the ids renewed."""
    if not held:
        return set()
    table = Notification.__table__
    result = conn.execute(
        table.update()
        .where(
            table.c.status == NotificationStatus.SENDING,
            tuple_(table.c.id, table.c.attempts).in_(list(held.items())),
        )
        .values(lease_until=until)
        .returning(table.c.id)
    )
    return set(result.scalars())


class LeaseKeeper:
    """A heartbeat that keeps this worker's leases on a claimed batch alive while it works
    through it, renewing every third of the lease on a connection of its own (so a send
    slower than the lease, or a batch longer than it, never hands rows to another worker).
    A worker that dies stops renewing, and its rows are due again one lease later."""

    def __init__(self, rows: Iterable[Claimed]) -> None:
        self._engine = db.engine
        self._seconds = current_app.config["NOTIFY_LEASE_SECONDS"]
        self._held = {row.id: row.attempts for row in rows}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def release(self, row: Claimed) -> None:
        """Stop renewing `row` (its outcome is recorded, or it is no longer ours)."""
        with self._lock:
            self._held.pop(row.id, None)

    def _run(self) -> None:
        conn = None
        try:
            while not self._stop.wait(self._seconds / 3):
                with self._lock:
                    held = dict(self._held)
                if not held:
                    continue
                try:
                    if conn is None:  # most batches finish before the first beat
                        conn = self._engine.connect()
                    until = utcnow() + timedelta(seconds=self._seconds)
                    renewed = renew_leases(conn, held, until)
                    conn.commit()
                except SQLAlchemyError:
                    # The sender re-checks each row before sending, so a missed beat can cost
                    # a row to another worker, never a second send.
                    log.warning("lease renewal failed; retrying at the next beat", exc_info=True)
                    if conn is not None:
                        conn.invalidate()
                        conn.close()
                        conn = None
                    continue
                with self._lock:
                    for lost in held.keys() - renewed:
                        self._held.pop(lost, None)
        finally:
            if conn is not None:
                conn.close()


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


def _still_ours(
    group: list[Claimed], build, conn, keeper: LeaseKeeper, sending: deque, counts: dict
) -> Iterator[Outgoing]:
    """The group's messages for a transport, each handed over only once its lease has been
    renewed under our claim (and committed); rows another worker took are skipped."""
    for row in group:
        renewed = renew_leases(conn, {row.id: row.attempts}, _lease_until())
        conn.commit()
        if not renewed:
            keeper.release(row)
            counts["lost"] = counts.get("lost", 0) + 1
            continue
        sending.append(row)
        yield build(row)


def send_claimed(rows: list[Claimed], overrides: dict[int, Outgoing] | None = None) -> dict:
    """Send claimed rows per channel and commit each outcome as it comes; returns counts:
    per recorded status, `sent` for every message a provider accepted, and `lost` for rows
    another worker had re-claimed (left to it unsent)."""
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

    def build(row: Claimed) -> Outgoing:
        return overrides.get(row.id) or _outgoing(row, contents)

    with outcome_connection() as conn, LeaseKeeper(rows) as keeper:
        for channel, group in by_channel.items():
            sending: deque[Claimed] = deque()
            messages = _still_ours(group, build, conn, keeper, sending, counts)
            for result in transport_for(channel).send_each(messages):
                row = sending.popleft()
                status = record_result(row, result, conn)
                conn.commit()
                keeper.release(row)
                if status is None:
                    log.warning("notification %s was re-claimed during its send", row.id)
                    status = NotificationStatus.SENT if result.ok else "lost"
                elif result.opted_out and row.member_id is not None:
                    record_opt_out(row.member_id)
                counts[status] = counts.get(status, 0) + 1
    return counts


def _claim(condition, limit: int | None) -> list[Claimed]:
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
            lease_until=_lease_until(),
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
