"""Guardians of minors (their links arrive with the minors feature)."""

from __future__ import annotations

from ..models import Member


def dissolve_guardian_links(member: Member) -> int:
    """End every guardian link in which `member` is the minor or the guardian.

    :returns: how many links were ended.
    """
    return 0


def is_guardian_of(actor: Member, member_id: int) -> bool:
    """Whether `actor` is an approved guardian of the member with this row id."""
    return False
