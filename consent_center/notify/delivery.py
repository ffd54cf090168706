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
import math
import random
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, or_, select, text, tuple_, update
from sqlalchemy.exc import SQLAlchemyError

from .. import twilio_adapter
from ..clock import utcnow
from ..domain import Channel, NotificationStatus
from ..extensions import db
from ..links import public_url_for
from ..metrics import count_delivery
from ..models import Notification, NotificationContent
from ..models.notification import SECRET_TO_DELIVER, TO_DELIVER
from ..sealed import InvalidToken, open_sealed
from ..services.members import record_sms_opt_out
from .base import DeliveryResult, Outgoing, UnavailableTransport
from .dev import DevMailboxTransport
from .email import SmtpTransport
from .sms import TwilioTransport

log = logging.getLogger("consent_center.notify")

# Kinds whose recipient and text are deleted as soon as they are sent.
SCRUB_AFTER_SEND = {
    "deletion_completed",
    "guardian_refused",
    "guardian_wait_expired",
}

# Kinds whose real text (a one-time code, an approval link) is never stored in clear: the row
# holds a masked copy and the real message sealed (`consent_center.sealed`). A worker sends it
# after commit, ahead of any bulk notice, never once it has expired, and then deletes it; a
# row of these kinds without a sealed message is never sent (its masked copy is no message).
SECRET_KINDS = frozenset(
    {
        "sign_in_code",
        "verify_contact",
        "reauth_code",
        "guardian_code",
        "guardian_invite",
        "guardian_confirm",
    }
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
    secret: str | None
    created_at: datetime
    request_id: str | None


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
    Notification.secret,
    Notification.created_at,
    Notification.request_id,
)


def transport_for(channel: str):
    """The configured transport for a channel: real when configured, else the dev mailbox
    (development and tests only)."""
    config = current_app.config
    if channel == Channel.SMS and not config.get("SMS_ENABLED", True):
        return UnavailableTransport("SMS is switched off (SMS_ENABLED=false)")
    if channel == Channel.EMAIL and config.get("MAIL_SERVER"):
        return SmtpTransport()
    if channel == Channel.SMS and twilio_adapter.is_configured(config):
        return TwilioTransport()
    if not config.get("DEV_MAILBOX"):
        return UnavailableTransport(f"no {channel} transport is configured")
    return DevMailboxTransport()


def unsubscribe_url(public_id: str) -> str:
    return public_url_for("public.unsubscribe", public_id=public_id)


def unsubscribe_headers(public_id: str) -> dict[str, str]:
    """RFC 8058 one-click unsubscribe headers for a non-essential email."""
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(public_id)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def _outgoing(
    row: Claimed, contents: dict[int, NotificationContent], sealed: dict | None = None
) -> Outgoing:
    subject, text, html = row.subject, row.body_text, row.body_html
    validity = None
    if sealed is not None:
        subject, text, html = sealed["subject"], sealed["text"], sealed["html"]
        if sealed.get("validity_seconds"):
            # What is left of the code's life: the provider drops it after that.
            left = datetime.fromisoformat(sealed["expires_at"]) - utcnow()
            validity = max(1, math.ceil(left.total_seconds()))
    if row.content_id is not None:
        content = contents[row.content_id]
        subject, text, html = content.subject, content.body_text, content.body_html
        # Shared content is rendered once for every recipient of a fan-out; the one part
        # that differs per recipient, their unsubscribe link, is put in as it leaves.
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
        validity_seconds=validity,
        request_id=row.request_id,
    )


def _open_secret(row: Claimed) -> tuple[dict | None, str | None]:
    """A code's or link's sealed message, or why it must not be sent."""
    if row.secret is None:
        return None, "no sealed message"
    try:
        sealed = open_sealed(row.secret)
    except InvalidToken:
        return None, "sealed under another SECRET_KEY"
    if datetime.fromisoformat(sealed["expires_at"]) <= utcnow():
        return None, "expired"
    return sealed, None


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
        if not result.transient:
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
    if row.secret is not None and final:
        values["secret"] = None  # a code or link is kept no longer than it takes to send it
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


def record_unsendable(row: Claimed, reason: str, conn) -> str:
    """Settle a code or link that must not go out (expired, unreadable) as dead, no commit."""
    table = Notification.__table__
    conn.execute(
        table.update()
        .where(
            table.c.id == row.id,
            table.c.status == NotificationStatus.SENDING,
            table.c.attempts == row.attempts,
        )
        .values(status=NotificationStatus.DEAD, last_error=reason, lease_until=None, secret=None)
    )
    return NotificationStatus.DEAD


def record_opt_out(member_id: int) -> None:
    """The provider says the recipient opted out (`twilio_adapter.Failure.OPTED_OUT`): honour
    it from now on."""
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


def send_claimed(rows: list[Claimed]) -> dict:
    """Send claimed rows per channel and commit each outcome as it comes; returns counts:
    per recorded status, `sent` for every message a provider accepted, and `lost` for rows
    another worker had re-claimed (left to it unsent)."""
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
    sealed: dict[int, dict] = {}
    unsendable: list[tuple[Claimed, str]] = []
    for row in rows:
        if row.secret is not None or row.kind in SECRET_KINDS:
            opened, reason = _open_secret(row)
            if opened is None:
                unsendable.append((row, reason))
                continue
            sealed[row.id] = opened
        by_channel.setdefault(row.channel, []).append(row)
    db.session.commit()  # hold no transaction open while talking to providers

    def build(row: Claimed) -> Outgoing:
        return _outgoing(row, contents, sealed.get(row.id))

    with outcome_connection() as conn, LeaseKeeper(rows) as keeper:
        for row, reason in unsendable:
            status = record_unsendable(row, reason, conn)
            conn.commit()
            keeper.release(row)
            counts[status] = counts.get(status, 0) + 1
            _count(row, status)
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
                _count(row, status)
    return counts


def _count(row: Claimed, status: str) -> None:
    """Count one outcome in the worker's metrics (`consent_center.metrics`)."""
    age = (utcnow() - row.created_at).total_seconds() if row.created_at else None
    count_delivery(row.channel, row.kind, str(status), age, row.kind in SECRET_KINDS)


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
    return and_(
        # Implied by the rest, but spelled as the partial index's predicate so the claim walks
        # ix_notification_due in order (see models.notification.TO_DELIVER).
        text(TO_DELIVER),
        _due_now(),
    )


def secret_due_condition():
    """Due rows carrying a sealed code or link (walks ix_notification_secret_due)."""
    return and_(text(SECRET_TO_DELIVER), _due_now())


def _due_now():
    now = utcnow()
    return and_(
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
    # Codes and links first: a person is waiting for each of them, and no one for a fan-out.
    rows = claim_codes(batch_size)
    return rows or _claim(due_condition(), batch_size)


def claim_codes(batch_size: int) -> list[Claimed]:
    """Claim up to `batch_size` due codes and links only, and commit the claim."""
    return _claim(secret_due_condition(), batch_size)


def secret_due() -> bool:
    """Whether a code or link is due (one indexed read; takes no write lock on SQLite)."""
    found = db.session.scalar(select(Notification.id).where(secret_due_condition()).limit(1))
    db.session.rollback()
    return found is not None
