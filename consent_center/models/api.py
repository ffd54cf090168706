"""What downstream systems use: API tokens, and the change feed they (and webhooks) read."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..domain.inventory import KEPT_ANONYMISED, held, held_table
from ..domain.text import _l
from ..extensions import db
from ..observability import current_request_id
from .types import UTCDateTime


class ApiToken(db.Model):
    """A bearer token of a company system. Only its SHA-256 is stored; the token is shown once."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The token's first characters, so a leaked token can be recognised in a listing.
    prefix: Mapped[str] = mapped_column(String(12))
    # Comma-separated scopes, e.g. "consents:read,audiences:read".
    scopes: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(s for s in self.scopes.split(",") if s)


class ChangeEvent(db.Model):
    """A change downstream systems must learn of that the consent ledger cannot tell them: an
    erasure (the erased member's ledger names only a tombstone). Written in the erasure's
    transaction. The change feed (services/downstream.py) lists these beside the ledger's
    events; `public_id` is the event id the feed and every webhook delivery carry."""

    __tablename__ = "change_event"
    __table_args__ = (
        # Finds erasure notices whose former member number is due for removal.
        Index(
            "ix_change_event_former_public_id",
            "created_at",
            sqlite_where=text("former_public_id IS NOT NULL"),
            postgresql_where=text("former_public_id IS NOT NULL"),
        ),
        {
            "info": held_table(
                _l("Changes announced to our other systems"),
                _l(
                    "When your consent changes or your data is erased, we tell the company's "
                    "systems that use your information, so they follow your choice at once."
                ),
                owner="member_id",
                position=11,
            )
        },
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(
        String(36), unique=True, default=lambda: str(uuid.uuid4())
    )
    type: Mapped[str] = mapped_column(
        String(32), info=held(_l("What changed"), retention=KEPT_ANONYMISED)
    )
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    # The id of the member's last ledger event when this was written (0: none): the feed
    # lists the notice after it, so a reader learns of a member's changes before their erasure.
    after_event_id: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The request whose transaction wrote the notice, carried into its webhook deliveries.
    request_id: Mapped[str | None] = mapped_column(String(64), default=current_request_id)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime,
        default=utcnow,
        info=held(_l("When it was announced"), retention=KEPT_ANONYMISED),
    )
    # An erasure notice names the member as downstream systems knew them (the member row
    # itself now carries a tombstone id); cleared when the notice period ends.
    former_public_id: Mapped[str | None] = mapped_column(
        String(32),
        info=held(
            _l("Your member number, in the notice of your erasure"),
            retention=_l(
                "Set only when your data is erased, and removed when the notice period ends"
            ),
        ),
    )
