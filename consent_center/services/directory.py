"""Staff's view of members: search, and one member's record (read-only, and audited)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import aliased

from ..extensions import db
from ..models import DeletionRequest, GuardianLink, Member, Notification
from .access_log import record_staff_access
from .consents import ConsentView, consent_history, current_consents
from .errors import NotAllowed, NotFound
from .member_data import GroupView, inventory_view

SEARCH_LIMIT = 50


def _require_staff(actor: Member) -> None:
    if actor is None or not actor.is_staff:
        raise NotAllowed(_l("Only staff may look up members."))


def search_members(staff: Member, query: str, limit: int = SEARCH_LIMIT) -> list[Member]:
    """Members whose name or email contains `query`, whose phone contains its digits, or
    whose public id starts with it; at most `limit`, by name.

    :raises NotAllowed: for a non-staff actor.
    """
    _require_staff(staff)
    query = " ".join((query or "").split())
    if len(query) < 2:
        return []
    needle = query.lower()
    conditions = [
        func.lower(Member.name).contains(needle, autoescape=True),
        Member.email.contains(needle, autoescape=True),
        Member.public_id.startswith(query, autoescape=True),
    ]
    digits = re.sub(r"\D", "", query)
    if len(digits) >= 4:
        conditions.append(Member.phone.contains(digits, autoescape=True))
    return list(
        db.session.scalars(
            select(Member).where(or_(*conditions)).order_by(Member.name, Member.id).limit(limit)
        )
    )


@dataclass(frozen=True)
class MemberRecord:
    """Everything staff may see about one member."""

    member: Member
    consents: list[ConsentView]
    groups: list[GroupView]
    ledger: list
    messages: list[Notification]
    deletions: list[DeletionRequest]
    guardian_links: list  # (link, role, other member or None)


def _guardian_links(member: Member) -> list:
    other = aliased(Member)
    rows = db.session.execute(
        select(GuardianLink, other)
        .outerjoin(
            other,
            other.id
            == case(
                (GuardianLink.minor_id == member.id, GuardianLink.guardian_id),
                else_=GuardianLink.minor_id,
            ),
        )
        .where(or_(GuardianLink.minor_id == member.id, GuardianLink.guardian_id == member.id))
        .order_by(GuardianLink.id.desc())
    ).all()
    return [
        (link, "ward" if link.minor_id == member.id else "guardian", person)
        for link, person in rows
    ]


def view_member(staff: Member, public_id: str, reason: str) -> MemberRecord:
    """One member's record for staff; the viewing itself is audited (``staff.member_viewed``)
    with the staff member's role and reason, which the member sees on "Who looked at my data".

    :raises NotAllowed: for a non-staff actor.
    :raises NotFound: for an unknown public id.
    :raises Invalid: without one of `STAFF_ACCESS_REASONS`.
    """
    _require_staff(staff)
    member = db.session.scalars(select(Member).where(Member.public_id == public_id)).first()
    if member is None:
        raise NotFound(_l("No such member."))
    record_staff_access(staff, member, reason=reason)
    consents = current_consents(member)
    return MemberRecord(
        member=member,
        consents=consents,
        groups=inventory_view(member, consent_count=len(consents)),
        ledger=consent_history(member, limit=200),
        messages=list(
            db.session.scalars(
                select(Notification)
                .where(Notification.member_id == member.id)
                .order_by(Notification.created_at.desc(), Notification.id.desc())
                .limit(200)
            )
        ),
        deletions=list(
            db.session.scalars(
                select(DeletionRequest)
                .where(DeletionRequest.member_id == member.id)
                .order_by(DeletionRequest.received_at.desc())
            )
        ),
        guardian_links=_guardian_links(member),
    )
