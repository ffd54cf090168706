"""One-time codes for password-less sign-in and for confirming a new contact detail."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..domain.inventory import CODE_KEPT, PROVIDED, SESSION_KEPT, held, held_table
from ..domain.text import _l
from ..extensions import db
from .types import UTCDateTime


class OneTimeCode(db.Model):
    __tablename__ = "one_time_code"
    __table_args__ = {
        "info": held_table(
            _l("Sign-in and verification codes"),
            _l(
                "Codes we sent you to sign in or to confirm a new contact detail. We keep only a "
                "fingerprint of each code, never the code itself."
            ),
            owner="member_id",
            position=5,
        )
    }

    id: Mapped[int] = mapped_column(primary_key=True)
    # Random handle kept in the session between "send code" and "enter code".
    token: Mapped[str] = mapped_column(
        String(43), unique=True, default=lambda: secrets.token_urlsafe(32)
    )
    purpose: Mapped[str] = mapped_column(
        String(24), info=held(_l("What the code was for"), retention=CODE_KEPT)
    )
    channel: Mapped[str] = mapped_column(String(8), info=held(_l("Sent via"), retention=CODE_KEPT))
    identifier_digest: Mapped[str] = mapped_column(
        String(64),
        index=True,
        info=held(_l("Fingerprint of the address it was sent to"), retention=CODE_KEPT),
    )
    # NULL for an unknown address: the flow looks the same, and no code can ever match.
    member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"), index=True)
    new_value: Mapped[str | None] = mapped_column(
        String(254),
        info=held(
            _l("New contact detail waiting to be confirmed"), retention=CODE_KEPT, source=PROVIDED
        ),
    )
    code_hash: Mapped[str] = mapped_column(
        String(64), info=held(_l("Fingerprint of the code"), retention=CODE_KEPT)
    )
    attempts: Mapped[int] = mapped_column(
        Integer, default=0, info=held(_l("Wrong attempts"), retention=CODE_KEPT)
    )
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, info=held(_l("Sent at"), retention=CODE_KEPT)
    )
    expires_at: Mapped[datetime] = mapped_column(
        UTCDateTime, info=held(_l("Expires at"), retention=CODE_KEPT)
    )
    consumed_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=held(_l("Used at"), retention=CODE_KEPT)
    )


class MemberSession(db.Model):
    """One signed-in device: the signed session cookie carries a random key, this row holds
    only its SHA-256. Deleting the row ends the session, whoever holds a copy of the cookie."""

    __tablename__ = "member_session"
    __table_args__ = {
        "info": held_table(
            _l("Where you are signed in"),
            _l(
                "One entry for each sign-in, so that signing out ends it on our side too. We keep "
                "only a fingerprint of the key in your browser's cookie, never the key itself."
            ),
            owner="member_id",
            position=6,
        )
    }

    id: Mapped[int] = mapped_column(primary_key=True)
    key_digest: Mapped[str] = mapped_column(
        String(64),
        unique=True,
        info=held(_l("Fingerprint of the session key"), retention=SESSION_KEPT),
    )
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, info=held(_l("Signed in at"), retention=SESSION_KEPT)
    )
    expires_at: Mapped[datetime] = mapped_column(
        UTCDateTime, info=held(_l("Session ends at"), retention=SESSION_KEPT)
    )
