"""Erasure: remove every personal field of a member everywhere, in one transaction.

What remains (the consent ledger, the audit log, the shell of deletion requests) stays keyed
to the member's row, which becomes a tombstone: a new random id and no personal data. The
ledger's hashes cover only non-personal fields and internal keys, so the chain still verifies.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, update

from ..clock import utcnow
from ..domain import MemberStatus, NotificationStatus
from ..extensions import db
from ..models import DeletionRequest, Member, Notification, OneTimeCode
from ..models.types import new_public_id
from .audit import record_audit


@dataclass(frozen=True)
class ErasureReport:
    tombstone_id: str
    codes_deleted: int
    notifications_purged: int


def erase_member(member: Member, *, actor: Member | None, reason: str) -> ErasureReport:
    """Erase `member` (no commit). Set-wise statements, so its cost barely grows with
    history.

    :param actor: who ordered it (staff deciding a request, a guardian's refusal, ...).
    :param reason: a non-personal label for the audit log, e.g. ``deletion_request``.
    """
    now = utcnow()
    codes = db.session.execute(
        delete(OneTimeCode).where(OneTimeCode.member_id == member.id)
    ).rowcount
    # Bodies and addresses go; the fact that a message was sent (kind, status) stays.
    purged = db.session.execute(
        update(Notification)
        .where(Notification.member_id == member.id)
        .values(
            recipient=None,
            subject=None,
            body_text=None,
            body_html=None,
            provider_id=None,
            last_error=None,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    # Anything still waiting must never go out now.
    db.session.execute(
        update(Notification)
        .where(
            Notification.member_id == member.id,
            Notification.status.in_([NotificationStatus.PENDING, NotificationStatus.SENDING]),
        )
        .values(status=NotificationStatus.FAILED, last_error="recipient erased", lease_until=None)
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        update(DeletionRequest)
        .where(DeletionRequest.member_id == member.id)
        .values(reason=None)
        .execution_options(synchronize_session=False)
    )
    from .guardians import dissolve_guardian_links

    dissolve_guardian_links(member)
    from .outgoing_webhooks import emit_event  # before the id goes: it names the member

    emit_event("member.erased", member)
    tombstone = "erased-" + new_public_id()[:24]
    member.public_id = tombstone
    member.name = None
    member.gender = None
    member.email = None
    member.phone = None
    member.birth_date = None
    member.locale = "en"
    member.email_verified_at = None
    member.phone_verified_at = None
    member.notify_email = False
    member.notify_sms = False
    member.sms_opted_out_at = None
    member.code_failures, member.code_failures_since, member.code_locked_until = 0, None, None
    member.status = MemberStatus.ERASED
    member.erased_at = now
    member.updated_at = now
    record_audit(
        "member.erased",
        actor=actor,
        subject=member,
        reason=reason,
        codes_deleted=codes,
        notifications_purged=purged,
    )
    db.session.flush()
    return ErasureReport(tombstone, codes, purged)
