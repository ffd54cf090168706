"""Who looked at my data: each time company staff viewed or exported a member's record, read
from the audit log (when, in which role, why), never naming the staff member."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from ..domain import ROLE_LABELS, STAFF_ACCESS_ACTIONS, STAFF_ACCESS_REASONS, Role
from ..extensions import db
from ..models import AuditEvent, Member
from .audit import record_audit
from .errors import Invalid

ACCESS_LOG_LIMIT = 500
STAFF_ACCESS_REASON_MISSING = _l("Choose why you are opening this record.")


@dataclass(frozen=True)
class StaffAccess:
    at: datetime
    action: object  # label: viewed or exported
    role: object  # label: staff or administrator
    reason: object | None  # label; None for entries written before reasons were asked


def record_staff_access(
    staff: Member, member: Member, *, reason: str, action: str = "staff.member_viewed", **details
) -> None:
    """Audit that `staff` saw (or exported) `member`'s record, with the role held then and the
    reason given.

    :raises Invalid: for a reason not in `STAFF_ACCESS_REASONS`.
    """
    if reason not in STAFF_ACCESS_REASONS:
        message = STAFF_ACCESS_REASON_MISSING
        raise Invalid(message, {"reason": [message]})
    record_audit(action, actor=staff, subject=member, reason=reason, role=staff.role, **details)


def staff_access_log(member: Member) -> list[StaffAccess]:
    """The member's record as staff saw it, newest first (at most `ACCESS_LOG_LIMIT`)."""
    rows = db.session.execute(
        select(AuditEvent.created_at, AuditEvent.action, AuditEvent.details, Member.role)
        .outerjoin(Member, Member.id == AuditEvent.actor_member_id)
        .where(
            AuditEvent.subject_member_id == member.id,
            AuditEvent.action.in_(tuple(STAFF_ACCESS_ACTIONS)),
        )
        .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
        .limit(ACCESS_LOG_LIMIT)
    ).all()
    accesses = []
    for at, action, details, current_role in rows:
        details = details or {}
        # The role held at the time (recorded since reasons are asked), else today's.
        role = details.get("role") or current_role
        accesses.append(
            StaffAccess(
                at=at,
                action=STAFF_ACCESS_ACTIONS[action],
                role=ROLE_LABELS.get(role, ROLE_LABELS[Role.STAFF]),
                reason=STAFF_ACCESS_REASONS.get(details.get("reason")),
            )
        )
    return accesses
