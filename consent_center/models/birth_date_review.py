"""A member's correction of their date of birth that would move them across MINOR_AGE (adult
to minor, or minor to adult): held for staff review instead of taking effect."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..domain.inventory import PROVIDED, UNTIL_ERASED, held, held_table
from ..domain.text import _l
from ..extensions import db
from .types import UTCDateTime, new_public_id


class BirthDateReview(db.Model):
    __tablename__ = "birth_date_review"
    __table_args__ = {
        "info": held_table(
            _l("Date-of-birth corrections waiting for review"),
            _l(
                "A corrected date of birth that would make you an adult or a minor in our "
                "records: staff check it before it takes effect."
            ),
            owner="member_id",
            position=9,
        )
    }

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    requested_birth_date: Mapped[date | None] = mapped_column(  # None once erased
        Date,
        info=held(
            _l("The date of birth you asked for"), retention=UNTIL_ERASED, source=PROVIDED
        ),
    )
    status: Mapped[str] = mapped_column(  # pending, approved, refused
        String(16), index=True, info=held(_l("Where the review stands"), retention=UNTIL_ERASED)
    )
    requested_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, info=held(_l("Asked on"), retention=UNTIL_ERASED)
    )
    decided_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=held(_l("Decided on"), retention=UNTIL_ERASED)
    )
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"))
