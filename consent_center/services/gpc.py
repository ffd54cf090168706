"""Global Privacy Control: the browser's `Sec-GPC: 1` is the member saying no to advertising
(the sale or sharing of their information), unless they confirmed a yes despite it."""

from __future__ import annotations

from sqlalchemy import select

from ..domain import Actor, Method
from ..extensions import db
from ..models import ConsentEvent, ConsentState, Member
from .consents import GPC_PURPOSES, ConsentView, set_consent

__all__ = ["GPC_PURPOSES", "apply_gpc_signal", "grant_despite_gpc"]


def apply_gpc_signal(member: Member) -> list[ConsentView]:
    """Withdraw each GPC purpose the member has on, as the member, by method ``gpc`` (no
    commit). A yes the member gave while overriding the signal stands.

    :returns: the new view of each purpose withdrawn (none when nothing was on).
    """
    rows = db.session.execute(
        select(ConsentState.purpose, ConsentState.granted, ConsentEvent.method)
        .join(ConsentEvent, ConsentEvent.id == ConsentState.event_id)
        .where(ConsentState.member_id == member.id, ConsentState.purpose.in_(GPC_PURPOSES))
    ).all()
    return [
        set_consent(member, row.purpose, False, actor=Actor.MEMBER, method=Method.GPC,
                    actor_member=member)
        for row in rows
        if row.granted and row.method != Method.GPC_OVERRIDE
    ]  # fmt: skip


def grant_despite_gpc(
    member: Member, purpose: str, *, gpc_sent: bool, method: str, locale: str | None = None
) -> ConsentView:
    """Give consent to a GPC purpose after the member confirmed it (no commit). While the
    browser sends GPC the event's method is ``gpc_override``, which the ledger keeps as proof
    that the member overrode the signal, and which `apply_gpc_signal` respects.

    :param method: the method to record when no signal was sent (form or htmx).
    :param locale: the language of the page the member confirmed on.
    :raises Invalid, NotAllowed: as `set_consent`.
    """
    return set_consent(
        member,
        purpose,
        True,
        actor=Actor.MEMBER,
        method=Method.GPC_OVERRIDE if gpc_sent else method,
        actor_member=member,
        locale=locale,
    )
