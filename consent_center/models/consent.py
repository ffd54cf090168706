"""The consent ledger (append-only, hash-chained per member) and the current state it yields."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..domain.inventory import KEPT_ANONYMISED, OUR_SYSTEMS, PROVIDED, held, held_table
from ..domain.text import _l
from ..extensions import db
from ..ledger_keys import link_digest
from ..observability import current_request_id
from .types import UTCDateTime

GENESIS_HASH = "0" * 64


class ConsentEvent(db.Model):
    """One consent given or withdrawn. Never updated or deleted; each is a receipt."""

    __tablename__ = "consent_event"
    __table_args__ = (
        UniqueConstraint("member_id", "seq"),
        {
            "info": held_table(
                _l("Your consent history"),
                _l("Every time a consent was given or withdrawn, as a receipt you can download."),
                owner="member_id",
                position=3,
            )
        },
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    receipt_id: Mapped[str] = mapped_column(
        String(36),
        unique=True,
        default=lambda: str(uuid.uuid4()),
        info=held(_l("Receipt number"), retention=KEPT_ANONYMISED),
    )
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    # Position in the member's chain; unique with member_id, so two racing writers cannot
    # both extend the chain from the same link.
    seq: Mapped[int] = mapped_column(
        Integer, info=held(_l("Position in your history"), retention=KEPT_ANONYMISED)
    )
    purpose: Mapped[str] = mapped_column(
        String(32), info=held(_l("Purpose"), retention=KEPT_ANONYMISED, source=PROVIDED)
    )
    granted: Mapped[bool] = mapped_column(
        Boolean, info=held(_l("Given or withdrawn"), retention=KEPT_ANONYMISED, source=PROVIDED)
    )
    policy_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("policy_version.id"),
        info=held(_l("Policy version in force"), retention=KEPT_ANONYMISED),
    )
    actor: Mapped[str] = mapped_column(
        String(16), info=held(_l("Who made the change"), retention=KEPT_ANONYMISED)
    )
    actor_member_id: Mapped[int | None] = mapped_column(
        ForeignKey("member.id"),
        info=held(_l("Which account made the change"), retention=KEPT_ANONYMISED),
    )
    method: Mapped[str] = mapped_column(
        String(24), info=held(_l("How the change was made"), retention=KEPT_ANONYMISED)
    )
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, info=held(_l("When"), retention=KEPT_ANONYMISED)
    )
    prev_hash: Mapped[str] = mapped_column(
        String(64), info=held(_l("Link to the previous receipt"), retention=KEPT_ANONYMISED)
    )
    hash: Mapped[str] = mapped_column(
        String(64), info=held(_l("Tamper-evident fingerprint"), retention=KEPT_ANONYMISED)
    )
    # Which ledger key made `hash` (ledger_keys.py): keys rotate, old links still verify.
    key_id: Mapped[str] = mapped_column(String(32))
    # The language of the page the choice was made on (a `Locale`); None where no page was
    # shown (a browser signal, a system change) and on events recorded before it was kept.
    locale: Mapped[str | None] = mapped_column(
        String(16), info=held(_l("Language of the page you chose on"), retention=KEPT_ANONYMISED)
    )
    # The request whose transaction wrote the event (`observability`), carried into the
    # webhook deliveries of it (X-Request-Id); NULL when a command wrote it. Not hashed: it
    # names an operation, not the choice.
    request_id: Mapped[str | None] = mapped_column(String(64), default=current_request_id)

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
    __table_args__ = {
        "info": held_table(
            _l("Your current consent choices"),
            _l("For each optional purpose, whether you have said yes, and since when."),
            owner="member_id",
            position=2,
        )
    }

    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), primary_key=True)
    purpose: Mapped[str] = mapped_column(
        String(32),
        primary_key=True,
        info=held(
            _l("Purpose"), retention=KEPT_ANONYMISED, source=PROVIDED, recipients=OUR_SYSTEMS
        ),
    )
    granted: Mapped[bool] = mapped_column(
        Boolean,
        info=held(
            _l("Your answer"), retention=KEPT_ANONYMISED, source=PROVIDED, recipients=OUR_SYSTEMS
        ),
    )
    event_id: Mapped[int] = mapped_column(
        ForeignKey("consent_event.id"),
        info=held(_l("The receipt behind it"), retention=KEPT_ANONYMISED),
    )
    policy_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("policy_version.id"),
        info=held(_l("Policy version in force"), retention=KEPT_ANONYMISED),
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, info=held(_l("Last changed"), retention=KEPT_ANONYMISED)
    )


class ReconsentRequest(db.Model):
    """A policy version asked the member again about a purpose they had said yes to. Written
    when the version is published; never updated or deleted. Until the member answers anew,
    the yes counts as no from the version's effective date (`usability.stale_grant_condition`).
    """

    __tablename__ = "reconsent_request"
    __table_args__ = (
        UniqueConstraint("member_id", "purpose", "policy_version_id"),
        {
            "info": held_table(
                _l("When we asked you again"),
                _l(
                    "Each time a new version of our privacy policy changed a use you had said "
                    "yes to, so that your yes no longer counted until you answered again."
                ),
                owner="member_id",
                position=4,
            )
        },
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    purpose: Mapped[str] = mapped_column(
        String(32), info=held(_l("Purpose"), retention=KEPT_ANONYMISED)
    )
    policy_version_id: Mapped[int] = mapped_column(
        ForeignKey("policy_version.id"),
        info=held(_l("Policy version that asked again"), retention=KEPT_ANONYMISED),
    )
    # The yes it asks about (the event behind the member's state when the version was published).
    event_id: Mapped[int] = mapped_column(
        ForeignKey("consent_event.id"),
        info=held(_l("The receipt of the yes it asked about"), retention=KEPT_ANONYMISED),
    )
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, info=held(_l("When"), retention=KEPT_ANONYMISED)
    )
