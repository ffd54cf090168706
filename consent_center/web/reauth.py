"""A fresh code before a serious action: one way to send it, remember it and check it.

Deleting an account and taking a copy of its data each need a code sent just now to the
asker's own verified channel (`services/auth.py:request_reauth_code`), whether members act for
themselves or guardians act for a ward. The code's token waits in the signed session cookie,
bound to whom the action is about, so a code asked for one ward cannot confirm another's.
"""

from __future__ import annotations

from flask import flash, session
from flask_babel import gettext as _

from ..extensions import db
from ..models import Member
from ..services import auth as auth_service
from .forms import check_code_form


class FreshCode:
    """The fresh code of one kind of action (its own place in the session)."""

    def __init__(self, action: str) -> None:
        self.key = f"reauth:{action}"

    def send(self, asker: Member, about: str | None = None) -> None:
        """Send a code to `asker`'s verified channel, remember it for `about` (a ward's public
        id, or None for the asker's own account), commit and say where it went."""
        code_request = auth_service.request_reauth_code(asker)
        db.session.commit()
        session[self.key] = [about, code_request.token]
        flash(_("We sent a confirmation code to %(to)s.", to=code_request.masked_to), "status")

    def pending(self, about: str | None = None) -> bool:
        """Whether a code was sent for `about` and not yet used up."""
        return self._token(about) is not None

    def check(self, form, asker: Member, about: str | None = None) -> int | None:
        """Check the code typed in `form` (its `code` field) against the one sent for `about`.

        :returns: None when it is right (the caller acts, commits, then calls `forget`), else
            the status to answer with, the error shown beside the field.
        """
        token = self._token(about)
        _done, failed = check_code_form(
            form,
            lambda: auth_service.confirm_reauth(asker, token, form.code.data),
            on_lockout=self.forget,
        )
        return failed

    def forget(self) -> None:
        session.pop(self.key, None)

    def _token(self, about: str | None) -> str | None:
        pending = session.get(self.key)
        if pending and pending[0] == about:
            return pending[1]
        return None


DELETION = FreshCode("deletion")
WARD_DELETION = FreshCode("ward_deletion")
EXPORT = FreshCode("export")
WARD_EXPORT = FreshCode("ward_export")
