"""Security incident notices: composed by staff in every language, sent through a fan-out."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..extensions import db
from .types import UTCDateTime, new_public_id


class IncidentNotice(db.Model):
    """One notice: its text per language, who it goes to, and the fan-out that sent it.

    Editable until sent; immutable afterwards (the fan-out's content is what went out).
    """

    __tablename__ = "incident_notice"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    # {"en": {"what_happened": ..., ...}, "zh_Hans_CN": {...}}: company text, no member data.
    content: Mapped[dict] = mapped_column(JSON, default=dict)
    # The recipient filter, e.g. {"status": "active", "purpose": "advertising"}.
    audience: Mapped[dict] = mapped_column(JSON, default=dict)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_by_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"))
    fan_out_id: Mapped[int | None] = mapped_column(ForeignKey("fan_out.id"))
