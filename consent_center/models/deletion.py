"""Deletion requests: received, reviewed, then completed by erasure or refused on one of the
policy's five grounds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..domain.inventory import COMPLETION_NOTICE_KEPT, KEPT_ANONYMISED, PROVIDED, held, held_table
from ..domain.text import _l
from ..extensions import db
from .types import UTCDateTime, new_public_id


class DeletionRequest(db.Model):
    __tablename__ = "deletion_request"
    __table_args__ = {
        "info": held_table(
            _l("Your deletion requests"),
            _l("Requests to delete your data, and how we answered them."),
            owner="member_id",
            position=8,
        )
    }

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    status: Mapped[str] = mapped_column(
        String(16), index=True, info=held(_l("Status"), retention=KEPT_ANONYMISED)
    )
    # The member themself, or a guardian acting for a ward.
    requested_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("member.id"), info=held(_l("Who asked"), retention=KEPT_ANONYMISED)
    )
    reason: Mapped[str | None] = mapped_column(
        Text,
        info=held(
            _l("Your reason"),
            retention=_l("Removed when your data is erased"),
            source=PROVIDED,
            erased=None,
        ),
    )
    received_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, info=held(_l("Received"), retention=KEPT_ANONYMISED)
    )
    due_at: Mapped[datetime] = mapped_column(
        UTCDateTime, index=True, info=held(_l("Due by"), retention=KEPT_ANONYMISED)
    )
    decided_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=held(_l("Decided"), retention=KEPT_ANONYMISED)
    )
    decided_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("member.id"), info=held(_l("Decided by"), retention=KEPT_ANONYMISED)
    )
    refusal_ground: Mapped[str | None] = mapped_column(
        String(32), info=held(_l("Legal ground of a refusal"), retention=KEPT_ANONYMISED)
    )
    refusal_explanation: Mapped[str | None] = mapped_column(
        Text, info=held(_l("Our explanation of a refusal"), retention=KEPT_ANONYMISED)
    )
    withdrawn_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=held(_l("Withdrawn"), retention=KEPT_ANONYMISED)
    )
    # Where to send the completion notice; captured at request time, discarded once used.
    notify_channel: Mapped[str | None] = mapped_column(
        String(8),
        info=held(
            _l("How to tell you it is done"),
            retention=COMPLETION_NOTICE_KEPT,
            source=PROVIDED,
        ),
    )
    notify_to: Mapped[str | None] = mapped_column(
        String(254),
        info=held(
            _l("Where to tell you it is done"),
            retention=COMPLETION_NOTICE_KEPT,
            source=PROVIDED,
        ),
    )
    notify_locale: Mapped[str | None] = mapped_column(
        String(16),
        info=held(
            _l("Language of the completion notice"),
            retention=COMPLETION_NOTICE_KEPT,
            source=PROVIDED,
        ),
    )
