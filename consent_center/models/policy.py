"""Policy versions: immutable once published; the current one is computed from dates."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..extensions import db
from .types import UTCDateTime, new_public_id


class PolicyVersion(db.Model):
    __tablename__ = "policy_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Staff URLs name a version (drafts included) by this random handle.
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    # Given at publication; a draft (published_at NULL) has none yet.
    number: Mapped[int | None] = mapped_column(Integer, unique=True)
    title: Mapped[str] = mapped_column(String(200))
    body_md: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    # Comma-separated purpose keys whose terms this version changes (re-consent needed).
    changed_purposes: Mapped[str] = mapped_column(String(200), default="")
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def changed_purpose_keys(self) -> tuple[str, ...]:
        return tuple(p for p in self.changed_purposes.split(",") if p)

    def is_in_effect(self, now: datetime) -> bool:
        return self.published_at is not None and self.effective_at <= now
