"""Whether a member's data may be used for a purpose *now*: the one rule that pages, the API
and audiences share.

Usable means: the account is active (its contact verified, not erased, not a minor awaiting
a guardian: `active_condition`, the one rule that audiences, the API and notices share), the
member (or their guardian) said yes, that yes was given under terms still in force (a later
policy version in effect that changes the purpose asks again), and, for minors, the purpose
is not barred (advertising, unless MINORS_ADVERTISING is on).
"""

from __future__ import annotations

from datetime import date, datetime

from flask import current_app
from sqlalchemy import and_, exists, literal, not_, or_, select
from sqlalchemy.orm import aliased

from ..clock import utcnow
from ..domain import ADVERTISING, MemberStatus
from ..models import ConsentState, Member, PolicyVersion

# Who may be told an essential notice (a security incident): the active, and minors whose
# account waits for a guardian. Never an unverified account (nobody proved the address is
# theirs) or an erased one.
ESSENTIAL_NOTICE_STATUSES = (MemberStatus.ACTIVE, MemberStatus.AWAITING_GUARDIAN)


def active_condition():
    """SQL over `Member`: the account is active. Registration leaves it `unverified` until a
    contact is verified; a minor's waits for a guardian; erasure ends it."""
    return Member.status == MemberStatus.ACTIVE


def is_active_account(member: Member) -> bool:
    """`active_condition` for a loaded member."""
    return member.status == MemberStatus.ACTIVE


def age_on(birth_date: date, today: date) -> int:
    """Full years from `birth_date` to `today`."""
    return (
        today.year
        - birth_date.year
        - ((today.month, today.day) < (birth_date.month, birth_date.day))
    )


def minor_cutoff(today: date | None = None, age: int | None = None) -> date:
    """Members born after this date are minors (under `age`, by default MINOR_AGE) today."""
    today = today or utcnow().date()
    age = current_app.config["MINOR_AGE"] if age is None else age
    try:
        return today.replace(year=today.year - age)
    except ValueError:  # 29 February
        return today.replace(year=today.year - age, day=28)


def is_minor(member: Member, today: date | None = None) -> bool:
    return member.birth_date is not None and member.birth_date > minor_cutoff(today)


def barred_for_minors(purpose: str) -> bool:
    return purpose == ADVERTISING and not current_app.config["MINORS_ADVERTISING"]


def purpose_barred(member: Member, purpose: str) -> bool:
    """True when this member may not give consent for this purpose at all."""
    return barred_for_minors(purpose) and is_minor(member)


def stale_grant_condition(now: datetime | None = None):
    """SQL: the ConsentState's yes was given before a version now in effect that changes
    its purpose (so the member must be asked again; until then it counts as no).

    :param now: a time, or a bound parameter for statements built once.
    """
    if now is None:
        now = utcnow()
    granted_under = aliased(PolicyVersion)
    later = aliased(PolicyVersion)
    granted_number = (
        select(granted_under.number)
        .where(granted_under.id == ConsentState.policy_version_id)
        .correlate(ConsentState)
        .scalar_subquery()
    )
    return exists(
        select(literal(1))
        .where(
            later.published_at.is_not(None),
            later.effective_at <= now,
            or_(ConsentState.policy_version_id.is_(None), later.number > granted_number),
            (literal(",") + later.changed_purposes + literal(",")).like(
                literal("%,") + ConsentState.purpose + literal(",%")
            ),
        )
        .correlate(ConsentState)
    )


def usable_condition(purpose: str, now: datetime | None = None):
    """SQL over Member joined to its ConsentState row for `purpose`: usable now."""
    now = now or utcnow()
    conditions = [
        active_condition(),
        ConsentState.purpose == purpose,
        ConsentState.granted.is_(True),
        not_(stale_grant_condition(now)),
    ]
    if barred_for_minors(purpose):
        conditions.append(
            or_(Member.birth_date.is_(None), Member.birth_date <= minor_cutoff(now.date()))
        )
    return and_(*conditions)
