"""Staff accounts."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from ..clock import utcnow
from ..domain import Channel, MemberStatus, Role
from ..extensions import db
from ..models import Member
from .audit import record_audit
from .errors import Conflict, Invalid, NotAllowed, NotFound
from .identity import find_member_by_contact
from .sessions import ROLE_LOST, end_all_sessions, is_role_lost
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
        previous, member.role = member.role, role
        if is_role_lost(previous, role):
            end_all_sessions(member, reason=ROLE_LOST, actor=actor)
    db.session.flush()
    record_audit("staff.role_set", actor=actor, subject=member, role=role, created=created)
    return member, created


# --- The team, managed by admins in the console --------------------------------------------


def _require_admin(actor: Member) -> None:
    if actor is None or actor.role != Role.ADMIN:
        raise NotAllowed(_l("Only admins may manage staff."))


def team_members() -> list[Member]:
    """Every staff and admin account, admins first, then by name."""
    return list(
        db.session.scalars(
            select(Member)
            .where(Member.role.in_((Role.STAFF, Role.ADMIN)), Member.status != MemberStatus.ERASED)
            .order_by(Member.role, Member.name, Member.id)
        )
    )


def load_team_member(admin: Member, public_id: str) -> Member:
    """A staff or admin account, for an admin to change.

    :raises NotAllowed: for a non-admin actor.
    :raises NotFound: for an unknown id or an account that is not staff.
    """
    _require_admin(admin)
    member = db.session.scalars(select(Member).where(Member.public_id == public_id)).first()
    if member is None or not member.is_staff:
        raise NotFound(_l("No such staff account."))
    return member


def add_team_member(admin: Member, email: str, *, role: str) -> tuple[Member, bool]:
    """Give the account with `email` (created if none) the `role`, as an admin.

    :raises NotAllowed: for a non-admin actor.
    :raises Invalid: for a bad email or role.
    """
    _require_admin(admin)
    try:
        return add_staff(email, role=role, actor=admin)
    except Invalid as exc:
        field = "role" if role not in (Role.STAFF, Role.ADMIN) else "email"
        raise Invalid(exc.message, {field: [exc.message]}) from None


def set_staff_role(admin: Member, member: Member, role: str) -> None:
    """Change a staff account's role: ``staff``, ``admin``, or ``member`` (no longer staff).

    The admins are locked and counted first, so two admins demoting each other at the same
    moment cannot leave the console without one.

    :raises NotAllowed: for a non-admin actor.
    :raises Invalid: for an unknown role.
    :raises Conflict: when it would leave no admin.
    """
    _require_admin(admin)
    if role not in (Role.MEMBER, Role.STAFF, Role.ADMIN):
        message = _l("Choose one of the options.")
        raise Invalid(message, {"role": [message]})
    if member.role == role:
        return
    if member.role == Role.ADMIN:
        admins = db.session.scalars(
            select(Member.id)
            .where(Member.role == Role.ADMIN, Member.status != MemberStatus.ERASED)
            .with_for_update()
        ).all()
        if len(admins) <= 1:
            raise Conflict(
                _l("There must always be at least one admin. Make someone else admin first.")
            )
    previous, member.role = member.role, role
    member.updated_at = utcnow()
    if is_role_lost(previous, role):
        # Pages already open with the old powers must not keep them: sign in again.
        end_all_sessions(member, reason=ROLE_LOST, actor=admin)
    record_audit(
        "staff.role_removed" if role == Role.MEMBER else "staff.role_set",
        actor=admin,
        subject=member,
        role=role,
        previous=previous,
    )
