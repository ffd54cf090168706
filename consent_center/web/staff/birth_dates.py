"""Staff: dates of birth a member corrected across MINOR_AGE, approved or refused (each
opening and each decision is audited; the member sees the opening on "Who looked at my
data")."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ...domain import BIRTH_DATE_REVIEW_LABELS
from ...extensions import db
from ...services import members as member_service
from ..member.forms import EmptyForm
from .views import bp


@bp.get("/birth-dates")
def birth_date_reviews():
    """Corrections of a date of birth waiting for review, oldest first."""
    return render_template(
        "staff/birth_date_reviews.html", reviews=member_service.birth_date_reviews(current_user)
    )


@bp.get("/birth-dates/<public_id>")
def birth_date_review(public_id: str):
    """One correction: the dates before and after, and the two decisions (opening it is an
    audited viewing of the member's record)."""
    review, member = member_service.open_birth_date_review(current_user, public_id)
    db.session.commit()
    return render_template(
        "staff/birth_date_review.html",
        review=review,
        member=member,
        becomes_minor=member_service.is_minor_born(review.requested_birth_date),
        labels=BIRTH_DATE_REVIEW_LABELS,
        form=EmptyForm(),
    )


@bp.post("/birth-dates/<public_id>")
def decide_birth_date(public_id: str):
    """Approve (the new date takes effect) or refuse (the old one stays)."""
    decision = request.form.get("decision")
    if not EmptyForm().validate_on_submit() or decision not in ("approve", "refuse"):
        abort(400)
    member_service.decide_birth_date_review(
        current_user, public_id, approve=decision == "approve"
    )
    db.session.commit()
    if decision == "approve":
        flash(_("Approved: the new date of birth is in effect."), "status")
    else:
        flash(_("Refused: the date of birth on record stays."), "status")
    return redirect(url_for("staff.birth_date_reviews"), 303)
