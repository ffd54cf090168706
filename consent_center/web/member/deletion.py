"""Asking for deletion: re-authenticate, confirm, then follow or withdraw the request."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import BooleanField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from ...clock import utcnow
from ...domain import DELETION_STATUS_LABELS, OPEN_DELETION_STATUSES
from ...extensions import db
from ...services import deletion as deletion_service
from ...services.errors import Conflict, Invalid
from ..forms import AppForm, apply_field_errors
from ..reauth import DELETION
from .forms import EmptyForm
from .views import bp


class DeletionForm(AppForm):
    code = StringField(
        _l("Confirmation code"),
        validators=[DataRequired(_l("Enter the code we sent you.")), Length(max=12)],
    )
    reason = TextAreaField(_l("Why? (optional)"), validators=[Length(max=2000)])
    confirm = BooleanField(
        _l("I understand that my account will be closed and my data erased."),
        validators=[DataRequired(_l("Tick this box to confirm."))],
    )


@bp.get("/delete")
def delete_start():
    """What deletion erases and keeps, when it will be done, and how to ask."""
    return render_template(
        "member/delete.html",
        open_deletion=deletion_service.open_request_for(current_user),
        deletion_labels=DELETION_STATUS_LABELS,
        due=deletion_service.due_at_for(utcnow()),
        send_form=EmptyForm(),
        form=DeletionForm() if DELETION.pending() else None,
    )


def show_open_request(public_id: str):
    """A second request would add nothing: say so politely, and show the open one."""
    flash(_("A deletion request is already open: here is where it stands."), "status")
    return redirect(url_for("member.deletion_status", public_id=public_id), 303)


@bp.post("/delete/code")
def delete_send_code():
    """Send a fresh code to re-authenticate before a deletion request."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    if deletion_service.open_request_for(current_user) is not None:
        return redirect(url_for("member.delete_start"), 303)
    DELETION.send(current_user)
    return redirect(url_for("member.delete_start") + "#confirm-title", 303)


@bp.post("/delete")
def delete_confirm():
    """Check the code and open the request."""
    form = DeletionForm()
    existing = deletion_service.open_request_for(current_user)
    if existing is not None:
        return show_open_request(existing.public_id)
    status = 422
    if form.validate_on_submit():
        failed = DELETION.check(form, current_user)
        if failed:
            status = failed
        else:
            try:
                deletion = deletion_service.request_deletion(
                    current_user, requested_by=current_user, reason=form.reason.data
                )
            except Conflict as exc:  # opened meanwhile, from another device
                db.session.rollback()
                return show_open_request(exc.field_errors["open"][0])
            except Invalid as exc:
                db.session.rollback()
                apply_field_errors(form, exc.field_errors)
            else:
                db.session.commit()
                DELETION.forget()
                flash(_("Your request is received."), "status")
                return redirect(
                    url_for("member.deletion_status", public_id=deletion.public_id), 303
                )
    return render_template(
        "member/delete.html",
        open_deletion=None,
        send_form=EmptyForm(),
        form=form,
        due=deletion_service.due_at_for(utcnow()),
    ), status


@bp.get("/deletion/<public_id>")
def deletion_status(public_id: str):
    """Where a deletion request stands."""
    deletion = deletion_service.load_request_for(current_user, public_id)
    # A guardian reads about the child, by name; a member about their own request.
    ward = None if deletion.member_id == current_user.id else deletion_service.subject_of(deletion)
    return render_template(
        "member/deletion_status.html",
        deletion=deletion,
        ward=ward if ward is not None and ward.name else None,
        labels=DELETION_STATUS_LABELS,
        is_open=deletion.status in OPEN_DELETION_STATUSES,
        can_withdraw=deletion_service.may_withdraw(deletion, current_user),
        form=EmptyForm(),
    )


@bp.post("/deletion/<public_id>/withdraw")
def withdraw_deletion(public_id: str):
    """Withdraw an open request."""
    deletion = deletion_service.load_request_for(current_user, public_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    deletion_service.withdraw_deletion(deletion, current_user)
    db.session.commit()
    flash(_("Your request is withdrawn. Nothing was deleted."), "status")
    return redirect(url_for("member.deletion_status", public_id=public_id), 303)
