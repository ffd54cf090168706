"""Signing a member in and out of this device (server-side sessions: services/sessions.py).

Sign-in and sign-out are full page loads: the Flask session is cleared, so a session id or a
CSRF token from before never carries over.
"""

from __future__ import annotations

from flask import session
from flask_babel import get_locale
from flask_login import current_user, login_user, logout_user

from ..domain import Locale
from ..extensions import db, login_manager
from ..models import Member
from ..services import sessions as session_service


@login_manager.user_loader
def load_member(key: str) -> Member | None:
    """The member of the live server-side session named by the cookie, else signed out."""
    member = session_service.member_for_session(key)
    if member is not None:
        member.session_key = key
    return member


def begin_session(member: Member) -> None:
    """Sign `member` in on this device with a new server-side session, and commit it."""
    key = session_service.open_session(member)
    db.session.commit()
    session.clear()  # a new session on sign-in: no fixation, old tokens die
    member.session_key = key
    login_user(member)


def renew_session() -> None:
    """Give this device a new session, after a change that ended the member's sessions (the
    member made it here, with a fresh code), and commit."""
    member = current_user._get_current_object()
    session_service.end_session(member.session_key)
    begin_session(member)


def end_session() -> None:
    """Sign out on this device: its server-side session ends (committed), the cookie empties."""
    if current_user.is_authenticated:
        session_service.end_session(current_user.session_key)
        db.session.commit()
    forget_session()


def forget_session() -> None:
    """Empty this browser's session (its server-side session has ended already), keeping
    only the language it was reading in, so what follows is said in that language."""
    language = str(get_locale() or Locale.EN)
    logout_user()
    session.clear()
    session["locale"] = language
