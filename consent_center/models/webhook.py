"""Webhook subscriptions: a downstream system's URL that receives signed change events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..extensions import db
from .types import UTCDateTime, new_public_id


class WebhookSubscription(db.Model):
    """A receiver of events. The secret is stored as it is, because every delivery is signed
    with it (HMAC-SHA256); it is shown once, when the subscription is made."""

    __tablename__ = "webhook_subscription"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Prefixed: recognisable, and never starting with "-" (which a CLI reads as an option).
    public_id: Mapped[str] = mapped_column(
        String(32), unique=True, default=lambda: "wh_" + new_public_id()
    )
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(100))
    # Comma-separated event types, e.g. "consent.changed,member.erased".
    events: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Where the notify worker is in the change feed for this receiver (an encoded
    # `services.downstream.FeedCursor`): every event before it was delivered or given up on.
    feed_cursor: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Failed tries of the event at the cursor, when to try it next, and why it last failed.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(200))
    # A worker delivering to this receiver holds it until then (so two workers never post
    # the same receiver's events side by side, out of order); expires if that worker dies.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def event_set(self) -> frozenset[str]:
        return frozenset(e for e in self.events.split(",") if e)
