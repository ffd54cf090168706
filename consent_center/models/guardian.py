"""Guardian links: a minor's account waits for a verified guardian's approval."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..extensions import db
from .types import UTCDateTime, new_public_id


class GuardianLink(db.Model):
    __tablename__ = "guardian_link"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    minor_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    # The guardian's email or mobile number as the minor gave it; the link is sent there.
    contact_channel: Mapped[str | None] = mapped_column(String(8))
    contact: Mapped[str | None] = mapped_column(String(254))
    # Set once the guardian verified that contact and answered.
    guardian_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"), index=True)
    status: Mapped[str] = mapped_column(String(12), index=True)
    # SHA-256 of the single-use link token; the token itself is never stored.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    invited_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # "Email plus": a purpose this guardian switched on that takes effect only once they confirm
    # through a second message sent after GUARDIAN_CONFIRM_DELAY_HOURS (advertising for a
    # minor). The confirmation link's token is stored as its SHA-256 only.
    pending_purpose: Mapped[str | None] = mapped_column(String(32))
    pending_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    pending_send_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pending_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
