"""A member's correction of their date of birth that would move them across MINOR_AGE (adult
to minor, or minor to adult): held for staff review instead of taking effect."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..extensions import db
from .types import UTCDateTime, new_public_id


class BirthDateReview(db.Model):
    __tablename__ = "birth_date_review"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    requested_birth_date: Mapped[date | None] = mapped_column(Date)  # None once erased
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending, approved, refused
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"))
