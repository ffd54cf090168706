"""A minor's account waiting for a guardian: the status, and a way to resend the link."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ...domain import GUARDIAN_STATUS_LABELS, MemberStatus
from ...extensions import db, limiter
from ...services.guardians import pending_link_for, resend_invitation
from ...services.policies import current_policy
from .forms import EmptyForm
from .views import bp


def _member_key() -> str:
    return "resend:" + current_user.public_id


@bp.get("/awaiting-guardian")
def awaiting_guardian():
    """Where the guardian's approval stands."""
    if current_user.status != MemberStatus.AWAITING_GUARDIAN:
        return redirect(url_for("member.overview"), 303)
    return render_template(
        "member/awaiting_guardian.html",
        link=pending_link_for(current_user),
        labels=GUARDIAN_STATUS_LABELS,
        policy=current_policy(),
        form=EmptyForm(),
    )


@bp.post("/awaiting-guardian/resend")
@limiter.limit(lambda: current_app.config["GUARDIAN_RESEND_LIMIT"], key_func=_member_key)
def resend_guardian_link():
    """Send the guardian a new approval link (the old one stops working)."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    resend_invitation(current_user)
    db.session.commit()
    flash(_("We sent your guardian a new link."), "status")
    return redirect(url_for("member.awaiting_guardian"), 303)
