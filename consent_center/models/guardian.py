"""Guardian links: a minor's account waits for a verified guardian's approval."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..domain import GuardianStatus
from ..domain.inventory import (
    ERASURE_TIME,
    PROVIDED,
    RECORD_KEPT,
    UNTIL_ERASED,
    held,
    held_table,
)
from ..domain.text import _l
from ..extensions import db
from .types import UTCDateTime, new_public_id


class GuardianLink(db.Model):
    __tablename__ = "guardian_link"
    __table_args__ = {
        "info": held_table(
            _l("Your guardians"),
            _l("The parent or guardian who approved your account, and how."),
            owner="minor_id",
            position=10,
        )
    }

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    minor_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    # The guardian's email or mobile number as the minor gave it; the link is sent there.
    contact_channel: Mapped[str | None] = mapped_column(
        String(8),
        info=held(_l("How we reached your guardian"), retention=RECORD_KEPT, source=PROVIDED),
    )
    contact: Mapped[str | None] = mapped_column(
        String(254),
        info=held(
            _l("Your guardian's email or mobile number"),
            retention=UNTIL_ERASED,
            source=PROVIDED,
            erased=None,
        ),
    )
    # Set once the guardian verified that contact and answered.
    guardian_id: Mapped[int | None] = mapped_column(
        ForeignKey("member.id"),
        index=True,
        info=held(_l("Your guardian's account"), retention=RECORD_KEPT),
    )
    status: Mapped[str] = mapped_column(
        String(12),
        index=True,
        info=held(_l("Status"), retention=RECORD_KEPT, erased=GuardianStatus.REVOKED),
    )
    # SHA-256 of the single-use link token; the token itself is never stored.
    token_hash: Mapped[str | None] = mapped_column(
        String(64),
        unique=True,
        info=held(_l("Fingerprint of the approval link"), retention=UNTIL_ERASED, erased=None),
    )
    token_expires_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=held(_l("Approval link expires"), retention=RECORD_KEPT)
    )
    invited_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, info=held(_l("Guardian asked on"), retention=RECORD_KEPT)
    )
    decided_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=held(_l("Guardian answered on"), retention=RECORD_KEPT)
    )
    note: Mapped[str | None] = mapped_column(
        Text,
        info=held(_l("Your guardian's note"), retention=UNTIL_ERASED, source=PROVIDED, erased=None),
    )
    ended_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime,
        info=held(_l("Oversight ended on"), retention=RECORD_KEPT, erased=ERASURE_TIME),
    )
    # "Email plus": a purpose this guardian switched on that takes effect only once they confirm
    # through a second message sent after GUARDIAN_CONFIRM_DELAY_HOURS (advertising for a
    # minor). The confirmation link's token is stored as its SHA-256 only.
    pending_purpose: Mapped[str | None] = mapped_column(
        String(32),
        info=held(
            _l("Use your guardian switched on, waiting for their second confirmation"),
            retention=UNTIL_ERASED,
            erased=None,
        ),
    )
    pending_token_hash: Mapped[str | None] = mapped_column(
        String(64),
        unique=True,
        info=held(
            _l("Fingerprint of the second confirmation link"), retention=UNTIL_ERASED, erased=None
        ),
    )
    pending_send_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime,
        info=held(_l("Second confirmation sent on"), retention=UNTIL_ERASED, erased=None),
    )
    pending_expires_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime,
        info=held(_l("Second confirmation link expires"), retention=UNTIL_ERASED, erased=None),
    )
