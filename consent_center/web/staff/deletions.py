"""Staff: the deletion queue and decisions (complete by erasure, or refuse on a ground)."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import BooleanField, RadioField, TextAreaField
from wtforms.validators import DataRequired, Length

from ...domain import DELETION_STATUS_LABELS, OPEN_DELETION_STATUSES, REFUSAL_GROUNDS
from ...extensions import db
from ...models import Member
from ...services import consents as consent_service
from ...services import deletion as deletion_service
from ...services import member_data
from ...services.errors import Invalid
from ..forms import AppForm, apply_field_errors
from ..member.forms import EmptyForm
from .views import bp


class RefuseForm(AppForm):
    ground = RadioField(
        _l("Legal ground"), choices=lambda: list(REFUSAL_GROUNDS.items()), validate_choice=False
    )
    explanation = TextAreaField(_l("Explanation for the member"), validators=[Length(max=5000)])


class CompleteForm(AppForm):
    confirm = BooleanField(
        _l("Erase this member's data now. This cannot be undone."),
        validators=[DataRequired(_l("Tick this box to confirm."))],
    )


@bp.get("/deletions")
def deletions():
    """The queue: open requests by due date, overdue ones marked; filter by status."""
    status = request.args.get("status") or None
    if status is not None and status not in DELETION_STATUS_LABELS:
        abort(404)
    return render_template(
        "staff/deletions.html",
        rows=deletion_service.deletion_queue(status),
        status=status,
        labels=DELETION_STATUS_LABELS,
    )


def _detail(deletion, refuse_form=None, complete_form=None, status=200):
    member = db.session.get(Member, deletion.member_id)
    return render_template(
        "staff/deletion.html",
        deletion=deletion,
        member=member,
        groups=member_data.inventory_view(member),
        history=consent_service.consent_history(member, limit=50),
        requests=deletion_service.member_requests(member),
        labels=DELETION_STATUS_LABELS,
        is_open=deletion.status in OPEN_DELETION_STATUSES,
        refuse_form=refuse_form or RefuseForm(),
        complete_form=complete_form or CompleteForm(),
        review_form=EmptyForm(),
    ), status


@bp.get("/deletions/<public_id>")
def deletion(public_id: str):
    """One request: the member's data summary and history, and the two decisions (the
    viewing is audited)."""
    deletion = deletion_service.open_request_for_review(current_user, public_id)
    db.session.commit()
    return _detail(deletion)


@bp.post("/deletions/<public_id>/review")
def start_review(public_id: str):
    """Mark the request as in review."""
    deletion = deletion_service.load_request_for(current_user, public_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    deletion_service.start_review(deletion, current_user)
    db.session.commit()
    return redirect(url_for("staff.deletion", public_id=public_id), 303)


@bp.post("/deletions/<public_id>/refuse")
def refuse(public_id: str):
    """Refuse on one of the five grounds, with an explanation the member will read."""
    deletion = deletion_service.load_request_for(current_user, public_id)
    form = RefuseForm()
    if form.validate_on_submit():
        try:
            deletion_service.refuse_deletion(
                deletion, current_user, ground=form.ground.data, explanation=form.explanation.data
            )
        except Invalid as exc:
            db.session.rollback()
            apply_field_errors(form, exc.field_errors)
        else:
            db.session.commit()
            flash(_("The request is refused and the member is told why."), "status")
            return redirect(url_for("staff.deletion", public_id=public_id), 303)
    return _detail(deletion, refuse_form=form, status=422)


@bp.post("/deletions/<public_id>/complete")
def complete(public_id: str):
    """Complete the request: erase the member's data."""
    deletion = deletion_service.load_request_for(current_user, public_id)
    form = CompleteForm()
    if not form.validate_on_submit():
        return _detail(deletion, complete_form=form, status=422)
    deletion_service.complete_deletion(deletion, current_user)
    db.session.commit()
    flash(_("The member's data is erased."), "status")
    return redirect(url_for("staff.deletion", public_id=public_id), 303)
