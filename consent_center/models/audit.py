"""The audit log: who did what to whom, and when. Details never hold personal data.

Entries are hash-chained per subject member (entries without a subject form one "system"
chain), so no global lock is needed and `flask audit verify` can prove nothing was changed.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..domain.inventory import KEPT_ANONYMISED, held, held_table
from ..domain.text import _l
from ..extensions import db
from ..ledger_keys import link_digest
from .types import UTCDateTime

AUDIT_GENESIS_HASH = "0" * 64


class AuditEvent(db.Model):
    __tablename__ = "audit_event"
    __table_args__ = (
        # Two racing writers cannot both extend one member's chain from the same link...
        UniqueConstraint("subject_member_id", "seq"),
        # ...nor the system chain (NULLs are distinct in a unique constraint, hence this).
        Index(
            "uq_audit_event_system_seq",
            "seq",
            unique=True,
            sqlite_where=text("subject_member_id IS NULL"),
            postgresql_where=text("subject_member_id IS NULL"),
        ),
        {
            "info": held_table(
                _l("Security and audit log"),
                _l(
                    "A record of important actions on your account (such as sign-ins and changes), "
                    "kept to protect it from unauthorized access."
                ),
                owner="subject_member_id",
                position=12,
            )
        },
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(
        String(64), index=True, info=held(_l("Action"), retention=KEPT_ANONYMISED)
    )
    actor_member_id: Mapped[int | None] = mapped_column(
        ForeignKey("member.id"), index=True, info=held(_l("Who acted"), retention=KEPT_ANONYMISED)
    )
    subject_member_id: Mapped[int | None] = mapped_column(
        ForeignKey("member.id"),
        index=True,
        info=held(_l("Whose account"), retention=KEPT_ANONYMISED),
    )
    details: Mapped[dict] = mapped_column(
        JSON,
        default=dict,
        info=held(_l("Details (never personal data)"), retention=KEPT_ANONYMISED),
    )
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, index=True, info=held(_l("When"), retention=KEPT_ANONYMISED)
    )
    # Position in the subject's chain (or the system chain), from 1.
    seq: Mapped[int] = mapped_column(
        Integer, info=held(_l("Position in the log of your account"), retention=KEPT_ANONYMISED)
    )
    prev_hash: Mapped[str] = mapped_column(
        String(64), info=held(_l("Link to the previous entry"), retention=KEPT_ANONYMISED)
    )
    hash: Mapped[str] = mapped_column(
        String(64), info=held(_l("Tamper-evident fingerprint"), retention=KEPT_ANONYMISED)
    )
    # Which ledger key made `hash` (ledger_keys.py): keys rotate, old links still verify.
    key_id: Mapped[str] = mapped_column(String(32))

    def compute_hash(self) -> str:
        """The fingerprint of this entry's content chained to the previous entry's.

        :raises ledger_keys.UnknownKey: when its key id names no configured key.
        """
        return audit_chain_hash(
            key_id=self.key_id,
            prev_hash=self.prev_hash,
            subject_member_id=self.subject_member_id,
            seq=self.seq,
            actor_member_id=self.actor_member_id,
            action=self.action,
            details=self.details,
            created_at=self.created_at,
        )


def audit_chain_hash(
    *,
    key_id: str,
    prev_hash: str,
    subject_member_id: int | None,
    seq: int,
    actor_member_id: int | None,
    action: str,
    details: dict | None,
    created_at: datetime,
) -> str:
    """HMAC-SHA256 under the key `key_id` (plain SHA-256 for legacy links) over a canonical
    JSON of the entry and the previous hash (format v1; the migration that added the chain
    computed the same plain SHA-256)."""
    payload = {
        "v": 1,
        "prev_hash": prev_hash,
        "subject": subject_member_id,
        "seq": seq,
        "actor": actor_member_id,
        "action": action,
        "details": details or {},
        "created_at": created_at.isoformat(timespec="microseconds"),
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return link_digest(key_id, blob.encode())
