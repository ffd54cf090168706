"""Writing the audit log."""

from __future__ import annotations

from ..extensions import db
from ..models import AuditEvent, Member


def record_audit(
    action: str, *, actor: Member | None, subject: Member | None = None, **details: object
) -> AuditEvent:
    """Append an audit entry in the current unit of work.

    :param action: dotted name such as ``consent.granted`` or ``auth.signed_in``.
    :param details: non-personal facts only (ids, purposes, counts).
    """
    event = AuditEvent(
        action=action,
        actor_member_id=actor.id if actor else None,
        subject_member_id=subject.id if subject else None,
        details=details,
    )
    db.session.add(event)
    return event
