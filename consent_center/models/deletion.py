"""Deletion requests: received, reviewed, then completed by erasure or refused on one of the
policy's five grounds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..extensions import db
from .types import UTCDateTime, new_public_id


class DeletionRequest(db.Model):
    __tablename__ = "deletion_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    # The member themself, or a guardian acting for a ward.
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"))
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"))
    refusal_ground: Mapped[str | None] = mapped_column(String(32))
    refusal_explanation: Mapped[str | None] = mapped_column(Text)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Where to send the completion notice; captured at request time, discarded once used.
    notify_channel: Mapped[str | None] = mapped_column(String(8))
    notify_to: Mapped[str | None] = mapped_column(String(254))
    notify_locale: Mapped[str | None] = mapped_column(String(16))
