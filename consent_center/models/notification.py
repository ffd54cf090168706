"""The notification outbox: written with its cause, delivered at most once per dedupe key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..domain import NotificationStatus
from ..domain.inventory import (
    MESSAGE_CARRIERS,
    MESSAGE_CONTENT_KEPT,
    PROVIDED,
    RECORD_KEPT,
    held,
    held_table,
)
from ..domain.text import _l
from ..extensions import db
from ..observability import current_request_id
from .types import UTCDateTime, key_string, new_public_id


class FanOut(db.Model):
    """One bulk send (a policy notice, an incident notice): its rows share content."""

    __tablename__ = "fan_out"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    kind: Mapped[str] = mapped_column(String(40))
    # The thing that caused it, e.g. "policy_version:3"; unique so a re-run adds nothing.
    cause: Mapped[str] = mapped_column(String(100), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    total: Mapped[int] = mapped_column(Integer, default=0)


class NotificationContent(db.Model):
    """Rendered text shared by many rows of a fan-out (one per channel and language).

    Holds no personal data: personal messages keep their own body on the row instead.
    """

    __tablename__ = "notification_content"
    # The target of `Notification`'s (content_id, fan_out_id) foreign key.
    __table_args__ = (UniqueConstraint("id", "fan_out_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    fan_out_id: Mapped[int] = mapped_column(ForeignKey("fan_out.id"), index=True)
    channel: Mapped[str] = mapped_column(String(8))
    locale: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str | None] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)


# Predicates of the partial indexes below. A query that should use one repeats it word for
# word: SQLite matches it only literally, and PostgreSQL cannot prove it from bound parameters.
TO_DELIVER = "status IN ('pending', 'sending')"
GAVE_UP = "status IN ('failed', 'dead')"
# Rows carrying a sealed code or link still to deliver: the claim takes these first.
SECRET_TO_DELIVER = "status IN ('pending', 'sending') AND secret IS NOT NULL"

# The columns of a message that hold what it said and to whom (personal data): erasure and
# retention blank exactly these; kind, status and times stay as the record that it was sent.
CONTENT_COLUMNS = (
    "recipient",
    "subject",
    "body_text",
    "body_html",
    "secret",
    "provider_id",
    "last_error",
)

# The PostgreSQL NOTIFY channel a request signals, in the transaction that writes a message a
# person is waiting for (a code, a link), so a listening worker wakes at commit.
DUE_CHANNEL = "notification_due"


class Notification(db.Model):
    __tablename__ = "notification"
    __table_args__ = (
        # The workers' claim walks this in (next_attempt_at, id) order and stops after a
        # batch; only rows still to deliver are in it, so it stays small and settled rows
        # cost nothing.
        Index("ix_notification_due", "next_attempt_at", "id",
              sqlite_where=text(TO_DELIVER), postgresql_where=text(TO_DELIVER)),
        # The few rows with a sealed secret, so claiming them first costs nothing on a backlog.
        Index("ix_notification_secret_due", "next_attempt_at", "id",
              sqlite_where=text(SECRET_TO_DELIVER), postgresql_where=text(SECRET_TO_DELIVER)),
        # The staff lists of messages that gave up (few among many sent ones).
        Index("ix_notification_gave_up", "id",
              sqlite_where=text(GAVE_UP), postgresql_where=text(GAVE_UP)),
        # Partial: most rows (a fan-out's, at insert) have none, so a bulk enqueue skips
        # maintaining this index.
        Index("ix_notification_provider_id", "provider_id",
              sqlite_where=text("provider_id IS NOT NULL"),
              postgresql_where=text("provider_id IS NOT NULL")),
        # One foreign key for both pointers of a fan-out row: its content must belong to its
        # fan-out, and `notification_content.fan_out_id` in turn references `fan_out`. One
        # check per inserted row instead of two; MATCH FULL: both set or both NULL.
        ForeignKeyConstraint(
            ["content_id", "fan_out_id"],
            ["notification_content.id", "notification_content.fan_out_id"],
            match="FULL",
        ),
        {"info": held_table(
            _l("Messages we sent you"),
            _l("Every email and text message we sent you, with its delivery status."),
            owner="member_id",
            position=7,
        )},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(key_string(32), unique=True, default=new_public_id)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"), index=True)
    channel: Mapped[str] = mapped_column(
        String(8), info=held(_l("Email or text message"), retention=RECORD_KEPT)
    )
    kind: Mapped[str] = mapped_column(
        String(40), info=held(_l("What it was about"), retention=RECORD_KEPT)
    )
    dedupe_key: Mapped[str] = mapped_column(key_string(200), unique=True)
    recipient: Mapped[str | None] = mapped_column(
        String(254),
        info=held(
            _l("Address it was sent to"),
            retention=MESSAGE_CONTENT_KEPT,
            source=PROVIDED,
            recipients=MESSAGE_CARRIERS,
        ),
    )
    subject: Mapped[str | None] = mapped_column(
        String(300),
        info=held(_l("Subject"), retention=MESSAGE_CONTENT_KEPT, recipients=MESSAGE_CARRIERS),
    )
    body_text: Mapped[str | None] = mapped_column(
        Text,
        info=held(_l("Message text"), retention=MESSAGE_CONTENT_KEPT, recipients=MESSAGE_CARRIERS),
    )
    body_html: Mapped[str | None] = mapped_column(
        Text,
        info=held(
            _l("Message as formatted email"),
            retention=MESSAGE_CONTENT_KEPT,
            recipients=MESSAGE_CARRIERS,
        ),
    )
    # A code's or link's real message, sealed (`consent_center.sealed`); the body columns
    # hold a masked copy. Deleted once the message is settled.
    secret: Mapped[str | None] = mapped_column(Text)
    # Fan-out rows point at shared content instead of holding their own body.
    content_id: Mapped[int | None] = mapped_column()
    fan_out_id: Mapped[int | None] = mapped_column(index=True)
    locale: Mapped[str] = mapped_column(
        String(16), default="en", info=held(_l("Language"), retention=RECORD_KEPT)
    )
    status: Mapped[str] = mapped_column(
        String(12),
        default=NotificationStatus.PENDING,
        info=held(_l("Delivery status"), retention=RECORD_KEPT),
    )
    attempts: Mapped[int] = mapped_column(
        Integer, default=0, info=held(_l("Delivery attempts"), retention=RECORD_KEPT)
    )
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider_id: Mapped[str | None] = mapped_column(
        String(200), info=held(_l("Delivery reference"), retention=MESSAGE_CONTENT_KEPT)
    )
    last_error: Mapped[str | None] = mapped_column(
        String(500), info=held(_l("Last delivery problem"), retention=MESSAGE_CONTENT_KEPT)
    )
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, info=held(_l("Written at"), retention=RECORD_KEPT)
    )
    # The request whose transaction wrote the row (`observability`), for following it into
    # the worker's log and a webhook's X-Request-Id; NULL when a command wrote it.
    request_id: Mapped[str | None] = mapped_column(String(64), default=current_request_id)
    sent_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=held(_l("Sent at"), retention=RECORD_KEPT)
    )
    delivered_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=held(_l("Delivered at"), retention=RECORD_KEPT)
    )


class NotificationSubject(db.Model):
    """A data subject an outbox row is about, beside the member it is addressed to.

    Every row names its subjects, so that erasure finds every message that mentions a person:
    a guardian invitation names the minor (`member:<row id>`), a contact-form message its
    sender (`contact:<keyed digest of the address>`). See services/notifications.py.
    """

    __tablename__ = "notification_subject"

    notification_id: Mapped[int] = mapped_column(
        ForeignKey("notification.id", ondelete="CASCADE"), primary_key=True
    )
    subject_key: Mapped[str] = mapped_column(String(80), primary_key=True, index=True)
