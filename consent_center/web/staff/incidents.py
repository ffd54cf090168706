"""Staff: security incident notices — compose in both languages, choose recipients, preview,
confirm, send."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ...domain import MEMBER_STATUS_LABELS, Channel, Locale
from ...extensions import db
from ...services import incidents as incident_service
from ...services.errors import Invalid
from ...services.notifications import render_message
from ..forms import apply_field_errors
from .forms import IncidentForm, SendIncidentForm
from .views import bp


def _form_page(form: IncidentForm, incident=None, status: int = 200):
    return render_template(
        "staff/incident_form.html",
        form=form,
        incident=incident,
        fields=incident_service.FIELDS,
        labels=incident_service.FIELD_LABELS,
    ), status


def _save(form: IncidentForm, incident=None):
    if form.validate_on_submit():
        try:
            incident = incident_service.save_incident(
                current_user, incident, content=form.content(), audience=form.audience()
            )
        except Invalid as exc:
            db.session.rollback()
            apply_field_errors(form, exc.field_errors)
        else:
            db.session.commit()
            return redirect(url_for("staff.incident", public_id=incident.public_id), 303)
    return _form_page(form, incident, status=422)


@bp.get("/incidents")
def incidents():
    """Every incident notice: drafts and sent ones."""
    return render_template("staff/incidents.html", incidents=incident_service.incident_notices())


@bp.route("/incidents/new", methods=["GET", "POST"])
def incident_new():
    """Compose a notice: five parts, in English and in Chinese, and who receives it."""
    form = IncidentForm()
    if request.method == "POST":
        return _save(form)
    return _form_page(form)


@bp.route("/incidents/<public_id>/edit", methods=["GET", "POST"])
def incident_edit(public_id: str):
    """Change a notice that is not sent yet (a sent one answers 409)."""
    incident = incident_service.load_unsent_incident(current_user, public_id)
    form = IncidentForm()
    if request.method == "POST":
        return _save(form, incident)
    form.fill(incident.content, incident.audience)
    return _form_page(form, incident)


def _preview(incident, form: SendIncidentForm, status: int = 200):
    context = incident_service.message_context(incident)
    previews = [
        (
            locale,
            render_message(incident_service.KIND, Channel.EMAIL, locale, context),
            render_message(incident_service.KIND, Channel.SMS, locale, context),
        )
        for locale in Locale
    ]
    return render_template(
        "staff/incident.html",
        incident=incident,
        form=form,
        previews=previews,
        counts=incident_service.recipient_counts(incident.audience),
        status_labels=MEMBER_STATUS_LABELS,
    ), status


@bp.get("/incidents/<public_id>")
def incident(public_id: str):
    """Preview both language versions and the number of recipients; confirm to send."""
    incident = incident_service.load_incident(current_user, public_id)
    return _preview(incident, SendIncidentForm())


@bp.post("/incidents/<public_id>/send")
def incident_send(public_id: str):
    """Send the notice through the outbox, then watch its progress."""
    incident = incident_service.load_incident(current_user, public_id)
    form = SendIncidentForm()
    if not form.validate_on_submit():
        return _preview(incident, form, status=422)
    fan = incident_service.send_incident(current_user, incident)
    db.session.commit()
    flash(_("The incident notice is on its way to %(n)d messages.", n=fan.total), "status")
    return redirect(url_for("staff.fan_out", public_id=fan.public_id), 303)
