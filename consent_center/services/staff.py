"""Staff accounts."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from ..clock import utcnow
from ..domain import Channel, MemberStatus, Role
from ..extensions import db
from ..models import Member
from .audit import record_audit
from .auth import find_member_by_contact
from .errors import Invalid
from .validation import normalize_email


def add_staff(
    email: str, *, role: str, name: str | None = None, actor: Member | None = None
) -> tuple[Member, bool]:
    """Create a staff account, or promote the existing account with this email.

    :returns: (the member, whether it was created).
    :raises Invalid: for a bad email or role.
    """
    address = normalize_email(email)
    if address is None:
        raise Invalid(_l("Enter a valid email address."))
    if role not in (Role.STAFF, Role.ADMIN):
        raise Invalid(_l("Choose one of the options."))
    member = find_member_by_contact(Channel.EMAIL, address)
    created = member is None
    if created:
        member = Member(
            name=name or address.split("@")[0],
            email=address,
            role=role,
            status=MemberStatus.ACTIVE,
            email_verified_at=None,
            created_at=utcnow(),
        )
        db.session.add(member)
    else:
        member.role = role
    db.session.flush()
    record_audit("staff.role_set", actor=actor, subject=member, role=role, created=created)
    return member, created
