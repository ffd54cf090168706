"""One-time codes for password-less sign-in and for confirming a new contact detail."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..extensions import db
from .types import UTCDateTime


class OneTimeCode(db.Model):
    __tablename__ = "one_time_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Random handle kept in the session between "send code" and "enter code".
    token: Mapped[str] = mapped_column(
        String(43), unique=True, default=lambda: secrets.token_urlsafe(32)
    )
    purpose: Mapped[str] = mapped_column(String(24))
    channel: Mapped[str] = mapped_column(String(8))
    identifier_digest: Mapped[str] = mapped_column(String(64), index=True)
    # NULL for an unknown address: the flow looks the same, and no code can ever match.
    member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"), index=True)
    new_value: Mapped[str | None] = mapped_column(String(254))
    code_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MemberSession(db.Model):
    """One signed-in device: the signed session cookie carries a random key, this row holds
    only its SHA-256. Deleting the row ends the session, whoever holds a copy of the cookie."""

    __tablename__ = "member_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_digest: Mapped[str] = mapped_column(String(64), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
