"""The answer to a consent switch, the same wherever the switch is (the member's page, the
GPC confirmation, a guardian's page for a ward)."""

from __future__ import annotations

from flask import Response, flash, redirect
from flask_babel import gettext as _

from ..domain import PURPOSES
from ..services.consents import ConsentView
from .htmx import render_page_or_fragment, wants_fragment


def consent_answer(
    view: ConsentView,
    purpose: str,
    granted: bool,
    *,
    back_to: str,
    receipt_id: str | None = None,
    ward=None,
) -> Response:
    """Say what changed: the updated switch (`view`, as the service returned it) and an
    announcement for htmx, else a redirect to `back_to` (at the switch) with the same message
    flashed.

    :param receipt_id: the new event's receipt, linked from the message (the member's own).
    :param ward: the minor a guardian acted for (the switch posts to the guardian's page).
    """
    title = PURPOSES[purpose].title
    message = (
        _("%(purpose)s is now on.", purpose=title)
        if granted
        else _("%(purpose)s is now off.", purpose=title)
    )
    if wants_fragment():
        return render_page_or_fragment(
            "member/consent_page.html",
            "member/_consent_switch_response.html",
            consent=view,
            status_message=message,
            receipt_id=receipt_id,
            ward=ward,
        )
    flash(message, "status")
    if receipt_id:
        flash(receipt_id, "receipt")
    return redirect(f"{back_to}#consent-{purpose}", 303)
