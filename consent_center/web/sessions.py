"""Signing a member in and out of this device (server-side sessions: services/sessions.py).

Sign-in and sign-out are full page loads: the Flask session is cleared, so a session id or a
CSRF token from before never carries over.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import make_response, redirect, request, session
from flask_babel import get_locale
from flask_login import current_user, login_url, login_user, logout_user

from ..domain import Locale
from ..extensions import db, login_manager
from ..models import Member
from ..services import sessions as session_service
from .htmx import wants_fragment


@login_manager.user_loader
def load_member(key: str) -> Member | None:
    """The member of the live server-side session named by the cookie, else signed out."""
    member = session_service.member_for_session(key)
    if member is not None:
        member.session_key = key
    return member


@login_manager.unauthorized_handler
def sign_in_first():
    """Not signed in (or the session ended): to the sign-in page, then back. An htmx request
    would put the sign-in page inside the part it swaps, so it is told to load the sign-in
    page whole (`HX-Redirect`), to come back to the page the member was on."""
    if not wants_fragment():
        return redirect(login_url(login_manager.login_view, next_url=request.url))
    page = urlsplit(request.headers.get("HX-Current-URL", ""))
    back_to = page.path + (f"?{page.query}" if page.query else "") if page.path else None
    response = make_response("", 401)
    response.headers["HX-Redirect"] = login_url(login_manager.login_view, next_url=back_to)
    response.vary.add("HX-Request")
    return response


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
