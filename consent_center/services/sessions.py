"""Signed-in sessions, held on the server so that ending one ends it for good.

Each sign-in creates a `MemberSession` row keyed by the SHA-256 of a random key. The signed
session cookie carries that key as Flask-Login's user id, never the member's own id. The user
loader finds the member through the row in one query on the row's unique index, joined to the
member's primary key (it replaces the member lookup the loader made anyway), so a cookie whose
row is gone or expired signs no one in, even a copy taken before. A remember-me cookie would
carry the same key and die with the row (none is issued).

A row ends when its device signs out; every row of a member ends when the member signs out
everywhere, changes their email or phone, is erased, or loses a staff role.
"""

from __future__ import annotations

import hashlib
import secrets
from functools import cache

from flask import current_app
from sqlalchemy import bindparam, delete, select

from ..clock import utcnow
from ..domain import MemberStatus, Role
from ..extensions import db
from ..models import Member, MemberSession
from ..models.types import UTCDateTime
from .audit import record_audit

# Why every session of a member ended (a non-personal label for the audit log).
SIGNED_OUT_EVERYWHERE = "signed_out_everywhere"
CONTACT_CHANGED = "contact_changed"
ERASED = "erased"
ROLE_LOST = "role_lost"

# A lower rank is fewer powers: moving down ends the sessions that held the higher one.
_ROLE_RANK = {Role.MEMBER: 0, Role.STAFF: 1, Role.ADMIN: 2}


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def open_session(member: Member) -> str:
    """Start a session for `member` on one device; returns the key for its cookie.

    The member's own expired rows are removed here, so rows do not pile up.
    """
    now = utcnow()
    db.session.execute(
        delete(MemberSession)
        .where(MemberSession.member_id == member.id, MemberSession.expires_at <= now)
        .execution_options(synchronize_session=False)
    )
    key = secrets.token_urlsafe(32)
    lifetime = current_app.permanent_session_lifetime
    db.session.add(
        MemberSession(
            member_id=member.id, key_digest=_digest(key), created_at=now, expires_at=now + lifetime
        )
    )
    db.session.flush()
    return key


def member_for_session(key: str | None) -> Member | None:
    """The member signed in by the session with this key, or None when it ended or expired."""
    if not key:
        return None
    return db.session.scalars(
        _member_by_session_key(), {"digest": _digest(key), "now": utcnow()}
    ).first()


@cache
def _member_by_session_key():
    # Runs on every signed-in request: the statement is built once.
    return (
        select(Member)
        .join(MemberSession, MemberSession.member_id == Member.id)
        .where(
            MemberSession.key_digest == bindparam("digest"),
            MemberSession.expires_at > bindparam("now", type_=UTCDateTime()),
            Member.status != MemberStatus.ERASED,
        )
    )


def end_session(key: str | None) -> None:
    """End the one session with this key (signing out on this device)."""
    if key:
        db.session.execute(
            delete(MemberSession)
            .where(MemberSession.key_digest == _digest(key))
            .execution_options(synchronize_session=False)
        )


def end_all_sessions(member: Member, *, reason: str, actor: Member | None) -> int:
    """End every session of `member`, on every device; returns how many there were.

    :param reason: a non-personal label for the audit log (the constants above).
    :param actor: who caused it (the member, or staff).
    """
    ended = db.session.execute(
        delete(MemberSession)
        .where(MemberSession.member_id == member.id)
        .execution_options(synchronize_session=False)
    ).rowcount
    record_audit("auth.sessions_ended", actor=actor, subject=member, reason=reason, ended=ended)
    return ended


def sign_out_everywhere(member: Member) -> int:
    """The member signs out on every device, this one included."""
    return end_all_sessions(member, reason=SIGNED_OUT_EVERYWHERE, actor=member)


def is_role_lost(previous: str, role: str) -> bool:
    """Whether moving from `previous` to `role` takes powers away."""
    return _ROLE_RANK.get(role, 0) < _ROLE_RANK.get(previous, 0)
