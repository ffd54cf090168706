"""Who guards whom, read-only: below the services that act on consents and deletion for a
ward (consents, deletion) and the guardian flows themselves (guardians)."""

from __future__ import annotations

from sqlalchemy import func, select

from ..domain import GuardianStatus
from ..extensions import db
from ..models import GuardianLink, Member


def is_guardian_of(actor: Member, member_id: int) -> bool:
    """Whether `actor` is an approved guardian of the member with this row id."""
    return (
        db.session.scalar(
            select(func.count())
            .select_from(GuardianLink)
            .where(
                GuardianLink.guardian_id == actor.id,
                GuardianLink.minor_id == member_id,
                GuardianLink.status == GuardianStatus.APPROVED,
            )
        )
        > 0
    )
