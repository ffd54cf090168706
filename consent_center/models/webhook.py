"""Webhook subscriptions: a downstream system's URL that receives signed change events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String
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

    @property
    def event_set(self) -> frozenset[str]:
        return frozenset(e for e in self.events.split(",") if e)
