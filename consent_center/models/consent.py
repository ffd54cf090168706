"""The consent ledger (append-only, hash-chained per member) and the current state it yields."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..extensions import db
from ..ledger_keys import link_digest
from .types import UTCDateTime

GENESIS_HASH = "0" * 64


class ConsentEvent(db.Model):
    """One consent given or withdrawn. Never updated or deleted; each is a receipt."""

    __tablename__ = "consent_event"
    __table_args__ = (UniqueConstraint("member_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    receipt_id: Mapped[str] = mapped_column(
        String(36), unique=True, default=lambda: str(uuid.uuid4())
    )
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    # Position in the member's chain; unique with member_id, so two racing writers cannot
    # both extend the chain from the same link.
    seq: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(32))
    granted: Mapped[bool] = mapped_column(Boolean)
    policy_version_id: Mapped[int | None] = mapped_column(ForeignKey("policy_version.id"))
    actor: Mapped[str] = mapped_column(String(16))
    actor_member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"))
    method: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # Which ledger key made `hash` (ledger_keys.py): keys rotate, old links still verify.
    key_id: Mapped[str] = mapped_column(String(32))
    # The language of the page the choice was made on (a `Locale`); None where no page was
    # shown (a browser signal, a system change) and on events recorded before it was kept.
    locale: Mapped[str | None] = mapped_column(String(16))

    def compute_hash(self) -> str:
        """The fingerprint of this event's content chained to the previous one.

        :raises ledger_keys.UnknownKey: when its key id names no configured key.
        """
        return chain_hash(
            key_id=self.key_id,
            prev_hash=self.prev_hash,
            member_id=self.member_id,
            seq=self.seq,
            receipt_id=self.receipt_id,
            purpose=self.purpose,
            granted=self.granted,
            policy_version_id=self.policy_version_id,
            actor=self.actor,
            actor_member_id=self.actor_member_id,
            method=self.method,
            created_at=self.created_at,
            # Hashed only when recorded, so links made before the language was kept verify
            # as they were made; a language added to, changed on or removed from a link
            # after it was made breaks its hash either way.
            **({} if self.locale is None else {"locale": self.locale}),
        )


def chain_hash(*, key_id: str, prev_hash: str, created_at: datetime, **fields) -> str:
    """HMAC-SHA256 under the key `key_id` (plain SHA-256 for legacy links) over a canonical
    JSON of the event's fields and the previous hash."""
    payload = dict(
        fields, prev_hash=prev_hash, created_at=created_at.isoformat(timespec="microseconds")
    )
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return link_digest(key_id, blob)


class ConsentState(db.Model):
    """The current answer per member and purpose, written with its event in one transaction."""

    __tablename__ = "consent_state"

    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32), primary_key=True)
    granted: Mapped[bool] = mapped_column(Boolean)
    event_id: Mapped[int] = mapped_column(ForeignKey("consent_event.id"))
    policy_version_id: Mapped[int | None] = mapped_column(ForeignKey("policy_version.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReconsentRequest(db.Model):
    """A policy version asked the member again about a purpose they had said yes to. Written
    when the version is published; never updated or deleted. Until the member answers anew,
    the yes counts as no from the version's effective date (`usability.stale_grant_condition`).
    """

    __tablename__ = "reconsent_request"
    __table_args__ = (UniqueConstraint("member_id", "purpose", "policy_version_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    policy_version_id: Mapped[int] = mapped_column(ForeignKey("policy_version.id"))
    # The yes it asks about (the event behind the member's state when the version was published).
    event_id: Mapped[int] = mapped_column(ForeignKey("consent_event.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
