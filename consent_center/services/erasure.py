"""Erasure: remove every personal field of a member everywhere, in one transaction.

What remains (the consent ledger, the audit log, the shell of deletion requests) stays keyed
to the member's row, which becomes a tombstone: a new random id and no personal data. The
ledger's hashes cover only non-personal fields and internal keys, so the chain still verifies.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, literal, or_, select, update

from ..clock import utcnow
from ..domain import NotificationStatus
from ..domain.inventory import erasure_values
from ..extensions import db
from ..models import (
    HELD_TABLES,
    BirthDateReview,
    DeletionRequest,
    GuardianLink,
    Member,
    Notification,
    NotificationSubject,
    OneTimeCode,
)
from ..models.notification import CONTENT_COLUMNS
from ..models.types import new_public_id
from .audit import record_audit
from .downstream import announce_erasure
from .identity import identifier_digest
from .notifications import member_subject, subjects_of
from .sessions import ERASED, end_all_sessions


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
    # Codes filed under someone else that were sent to this member's contacts (a guardian
    # proving their address for a ward) go too: their digest would name the address.
    digests = [identifier_digest(value) for value in (member.email, member.phone) if value]
    codes = db.session.execute(
        delete(OneTimeCode).where(
            or_(OneTimeCode.member_id == member.id, OneTimeCode.identifier_digest.in_(digests))
        )
    ).rowcount
    end_all_sessions(member, reason=ERASED, actor=actor)
    # Every message to the member or about them (a guardian's invitation naming a minor, a
    # contact-form message from their address): bodies and addresses go; the fact that a
    # message was sent (kind, status) stays. (Webhook deliveries store nothing: they are
    # built from the change feed when sent, notify/webhook.py.)
    keys = subjects_of(member)
    about = or_(
        Notification.member_id == member.id,
        Notification.id.in_(
            select(NotificationSubject.notification_id).where(
                NotificationSubject.subject_key.in_(keys)
            )
        ),
    )
    purged = db.session.execute(
        update(Notification)
        .where(about)
        .values(dict.fromkeys(CONTENT_COLUMNS))
        .execution_options(synchronize_session=False)
    ).rowcount
    # Anything still waiting must never go out now.
    db.session.execute(
        update(Notification)
        .where(
            about,
            Notification.status.in_([NotificationStatus.PENDING, NotificationStatus.SENDING]),
        )
        .values(status=NotificationStatus.FAILED, last_error="recipient erased", lease_until=None)
        .execution_options(synchronize_session=False)
    )
    # The contact digests would still link the rows to the address: the rows keep naming
    # their subject by the tombstone's row key instead.
    own_key = member_subject(member)
    contact_keys = [key for key in keys if key != own_key]
    by_contact = select(NotificationSubject.notification_id).where(
        NotificationSubject.subject_key.in_(contact_keys)
    )
    already = select(NotificationSubject.notification_id).where(
        NotificationSubject.subject_key == own_key
    )
    db.session.execute(
        insert(NotificationSubject).from_select(
            ["notification_id", "subject_key"],
            select(NotificationSubject.notification_id, literal(own_key))
            .where(NotificationSubject.notification_id.in_(by_contact))
            .where(NotificationSubject.notification_id.not_in(already))
            .distinct(),
        )
    )
    db.session.execute(
        delete(NotificationSubject)
        .where(NotificationSubject.subject_key.in_(contact_keys))
        .execution_options(synchronize_session=False)
    )
    # The member's deletion requests keep their shell; what the inventory says erasure
    # removes from them goes.
    db.session.execute(
        update(DeletionRequest)
        .where(DeletionRequest.member_id == member.id)
        .values(erasure_values(HELD_TABLES["deletion_request"], now=now, tombstone=None))
        .execution_options(synchronize_session=False)
    )
    # A date-of-birth correction is the member's data through and through (the audit log
    # keeps that one was asked and decided).
    db.session.execute(
        delete(BirthDateReview)
        .where(BirthDateReview.member_id == member.id)
        .execution_options(synchronize_session=False)
    )
    # Every guardian link naming the member (as the minor, the guardian, or by a contact
    # it invites) ends, and loses what the inventory says erasure removes.
    contacts = [value for value in (member.email, member.phone) if value]
    db.session.execute(
        update(GuardianLink)
        .where(
            (GuardianLink.minor_id == member.id)
            | (GuardianLink.guardian_id == member.id)
            | GuardianLink.contact.in_(contacts)
        )
        .values(erasure_values(HELD_TABLES["guardian_link"], now=now, tombstone=None))
        .execution_options(synchronize_session=False)
    )
    announce_erasure(member)  # before the id goes: the notice names the member
    tombstone = "erased-" + new_public_id()[:24]
    # Every profile field the inventory says erasure removes (models/member.py `erased=`).
    erased = erasure_values(HELD_TABLES["member"], now=now, tombstone=tombstone)
    for column, value in erased.items():
        setattr(member, column, value)
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
