"""Messages to the people in a guardianship, one channel each (`reach.ACCOUNT`), and the
request to guardians to decide again when a policy version changes a purpose.

Below both the guardian flows (guardians.py) and the policy lifecycle (policies.py): a
publish asks guardians again without depending on the consent service.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import aliased

from ..clock import utcnow
from ..domain import GuardianStatus
from ..extensions import db
from ..models import ConsentState, GuardianLink, Member
from .audit import record_audit
from .notifications import enqueue_notification, member_subject
from .reach import ACCOUNT, first_contact
from .usability import active_condition, is_active_account, minor_cutoff


def tell_member(
    member: Member,
    kind: str,
    context: dict,
    key: str | None = None,
    about: tuple[str, ...] = (),
) -> None:
    """Message `member` on one channel (`reach.ACCOUNT`); `about` names the other people
    the message mentions."""
    found = first_contact(member, ACCOUNT)
    if found is None:
        return
    channel, recipient = found
    enqueue_notification(
        member=member,
        channel=channel,
        kind=kind,
        dedupe_key=key or f"{kind}:{member.public_id}:{utcnow().isoformat()}",
        recipient=recipient,
        locale=member.locale,
        context=context,
        about=about,
    )


def ask_guardians_again(version) -> int:
    """A published version that changes a purpose hands a minor's yes for it back to the
    guardians (PIPL art. 31): once the version is in effect the yes counts as no
    (`usability.stale_grant_condition`) and only a guardian can say yes again
    (`consents.guardian_may_grant`). Each approved guardian of each minor with such a yes is
    told now, with the date, and asked to decide again on their guardian page.

    :param version: the published `PolicyVersion`.
    :returns: how many guardians were asked.
    """
    changed = tuple(version.changed_purpose_keys)
    if not changed:
        return 0
    guardian = aliased(Member)
    rows = db.session.execute(
        select(GuardianLink, Member, guardian, ConsentState.purpose)
        .join(Member, Member.id == GuardianLink.minor_id)
        .join(guardian, guardian.id == GuardianLink.guardian_id)
        .join(ConsentState, ConsentState.member_id == Member.id)
        .where(
            GuardianLink.status == GuardianStatus.APPROVED,
            active_condition(),
            Member.birth_date > minor_cutoff(version.effective_at.date()),
            ConsentState.purpose.in_(changed),
            ConsentState.granted.is_(True),
        )
        .order_by(GuardianLink.id, ConsentState.purpose)
    ).all()
    asked: dict[int, tuple[GuardianLink, Member, Member, list[str]]] = {}
    for link, minor, adult, purpose in rows:
        asked.setdefault(link.id, (link, minor, adult, []))[3].append(purpose)
    for link, minor, adult, purposes in asked.values():
        if not is_active_account(adult):
            continue
        tell_member(
            adult,
            "guardian_reconsent",
            {
                "minor_name": minor.name,
                "purpose_keys": tuple(purposes),
                "number": version.number,
                "effective_at": version.effective_at,
            },
            key=f"guardian_reconsent:{version.number}:{link.public_id}",
            about=(member_subject(minor),),
        )
        record_audit(
            "guardian.reconsent_requested",
            actor=None,
            subject=minor,
            link=link.public_id,
            version=version.number,
            purposes=purposes,
        )
    return len(asked)
