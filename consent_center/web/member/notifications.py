"""The member's notification choices and the list of every message sent to them."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import BooleanField

from ...domain import NOTIFICATION_KIND_LABELS, NOTIFICATION_STATUS_LABELS
from ...extensions import db
from ...services.errors import Invalid
from ...services.members import opt_out_of_sms, set_notification_preferences
from ...services.notifications import member_messages
from ..forms import AppForm, apply_field_errors
from .forms import EmptyForm
from .views import bp


class NotificationPreferencesForm(AppForm):
    email = BooleanField(_l("By email"))
    sms = BooleanField(_l("By text message"))


@bp.route("/notifications", methods=["GET", "POST"])
def notifications():
    """Choose email and/or SMS for policy notices; see every message we sent you."""
    form = NotificationPreferencesForm(
        data={"email": current_user.notify_email, "sms": current_user.notify_sms}
        if request.method == "GET"
        else None
    )
    status = 200
    if form.validate_on_submit():
        try:
            set_notification_preferences(current_user, email=form.email.data, sms=form.sms.data)
        except Invalid as exc:
            db.session.rollback()
            apply_field_errors(form, exc.field_errors)
            status = 422
        else:
            db.session.commit()
            flash(_("Your choices are saved."), "status")
            return redirect(url_for("member.notifications"), 303)
    elif request.method == "POST":
        status = 422
    return render_template(
        "member/notifications.html",
        form=form,
        stop_form=EmptyForm(),
        messages=member_messages(current_user),
        status_labels=NOTIFICATION_STATUS_LABELS,
        kind_labels=NOTIFICATION_KIND_LABELS,
    ), status


@bp.post("/notifications/sms/stop")
def stop_sms():
    """Stop all text messages (for numbers where replying STOP is not possible)."""
    form = EmptyForm()
    if not form.validate_on_submit():
        return redirect(url_for("member.notifications"), 303)
    opt_out_of_sms(current_user)
    db.session.commit()
    flash(_("We will not send you text messages any more."), "status")
    return redirect(url_for("member.notifications"), 303)
