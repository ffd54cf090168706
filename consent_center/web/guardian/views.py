"""Guardians: approve or refuse a minor's account from a single-use link, then oversee
their wards' consents, data and deletion."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user

from ...clock import utcnow
from ...domain import (
    ACTOR_LABELS,
    DELETION_STATUS_LABELS,
    METHOD_LABELS,
    NOTIFICATION_KIND_LABELS,
    NOTIFICATION_STATUS_LABELS,
    OPTIONAL_PURPOSES,
    PURPOSES,
    WARD_GROUP_TITLES,
    Actor,
    Method,
)
from ...extensions import db, limiter
from ...models import Member
from ...services import auth as auth_service
from ...services import consents as consent_service
from ...services import deletion as deletion_service
from ...services import guardians as guardian_service
from ...services import member_data
from ...services.access_log import staff_access_log
from ...services.errors import Conflict, Invalid
from ...services.identity import find_member_by_contact
from ...services.localtime import format_moment
from ...services.notifications import member_messages
from ...services.usability import purpose_barred
from ..consent_answers import consent_answer
from ..forms import apply_field_errors, check_code_form
from ..htmx import render_page_or_fragment, wants_fragment
from ..i18n import current_locale, remember_locale
from ..member.deletion import show_open_request
from ..member.export import ExportForm, download, export_page
from ..member.forms import ConsentForm, EmptyForm
from ..reauth import WARD_DELETION, WARD_EXPORT
from ..sessions import begin_session
from .forms import DecisionForm, GuardianCodeForm, InviteForm, WardDeletionForm

bp = Blueprint("guardian", __name__, url_prefix="/guardian")

CODE_TOKEN = "guardian_code_token"
VERIFIED_LINK = "guardian_verified_link"
# (ward public id, re-authentication token) while a guardian confirms a ward's deletion.
# (ward public id, re-authentication token) while a guardian confirms a ward's export.


# --- The approval link -----------------------------------------------------------------


def _invitation(token: str):
    link = guardian_service.load_invitation(token)
    return link, db.session.get(Member, link.minor_id)


@bp.get("/invite/<token>")
def invitation(token: str):
    """A guardian opens the link: first, prove you hold the contact it was sent to."""
    try:
        link, minor = _invitation(token)
    except Exception:  # noqa: BLE001 - any unusable link gets the same clear page
        db.session.rollback()
        return render_template(
            "guardian/link_unusable.html", hours=guardian_service.LINK_TTL_HOURS
        ), 404
    if session.get(VERIFIED_LINK) == link.public_id:
        return redirect(url_for("guardian.decide", token=token), 303)
    return render_template(
        "guardian/invitation.html",
        link=link,
        minor=minor,
        token=token,
        send_form=EmptyForm(),
        form=GuardianCodeForm() if session.get(CODE_TOKEN) else None,
    )


@bp.post("/invite/<token>/code")
@limiter.limit("5 per hour")
def send_code(token: str):
    """Send a one-time code to the guardian contact."""
    link, minor = _invitation(token)
    if not EmptyForm().validate_on_submit():
        abort(400)
    code_request = auth_service.request_guardian_code(link, minor)
    db.session.commit()
    session[CODE_TOKEN] = code_request.token
    flash(_("We sent a code to %(to)s.", to=code_request.masked_to), "status")
    return redirect(url_for("guardian.invitation", token=token), 303)


@bp.post("/invite/<token>/verify")
def verify(token: str):
    """Check the guardian's code."""
    link, minor = _invitation(token)
    form = GuardianCodeForm()
    status = 422
    if form.validate_on_submit():
        _done, failed = check_code_form(
            form,
            lambda: auth_service.confirm_guardian_code(
                link, session.get(CODE_TOKEN), form.code.data
            ),
            on_lockout=lambda: session.pop(CODE_TOKEN, None),
        )
        if failed:
            status = failed
        else:
            session.pop(CODE_TOKEN, None)
            session[VERIFIED_LINK] = link.public_id
            return redirect(url_for("guardian.decide", token=token), 303)
    return render_template(
        "guardian/invitation.html",
        link=link,
        minor=minor,
        token=token,
        send_form=EmptyForm(),
        form=form,
    ), status


@bp.route("/invite/<token>/decide", methods=["GET", "POST"])
def decide(token: str):
    """Show exactly what the minor's account holds, then approve or refuse."""
    link, minor = _invitation(token)
    if session.get(VERIFIED_LINK) != link.public_id:
        return redirect(url_for("guardian.invitation", token=token), 303)
    has_account = find_member_by_contact(link.contact_channel, link.contact) is not None
    form = DecisionForm()
    status = 200
    if form.validate_on_submit():
        decision = request.form.get("decision")
        if decision == "refuse":
            erased = guardian_service.refuse_minor(link, note=form.note.data)
            db.session.commit()
            session.pop(VERIFIED_LINK, None)
            return render_template("guardian/refused.html", erased=erased), 200
        if decision == "approve":
            purposes = {
                p
                for p in OPTIONAL_PURPOSES
                if getattr(form, p, None) is not None and getattr(form, p).data
            }
            try:
                guardian = guardian_service.approve_minor(
                    link,
                    guardian_name=form.guardian_name.data,
                    guardian_birth_date=form.guardian_birth_date.data,
                    purposes=purposes,
                    note=form.note.data,
                    locale=str(current_locale()),
                )
            except (Invalid, Conflict) as exc:
                db.session.rollback()
                apply_field_errors(form, exc.field_errors or {"note": [exc.message]})
                status = 422
            else:
                db.session.commit()
                # The guardian proved the contact with a code: sign them in (new session).
                begin_session(guardian)
                session["is_guardian"] = True
                flash(_("Thank you. The account is approved."), "status")
                return remember_locale(
                    redirect(url_for("guardian.dashboard"), 303), guardian.locale
                )
        else:
            status = 422
    elif request.method == "POST":
        status = 422
    return render_template(
        "guardian/decide.html",
        link=link,
        minor=minor,
        form=form,
        token=token,
        groups=member_data.inventory_view(minor),
        has_account=has_account,
        refusal_erases=guardian_service.refusal_erases(minor),
        advertising_barred=purpose_barred(minor, "advertising"),
        guardian_min_age=guardian_service.GUARDIAN_MIN_AGE,
    ), status


# --- The dashboard -----------------------------------------------------------------------


@bp.before_request
def require_guardian_sign_in():
    """Everything but the approval link needs a signed-in member."""
    if request.endpoint in {
        "guardian.invitation",
        "guardian.send_code",
        "guardian.verify",
        "guardian.decide",
    }:
        return None
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    return None


@bp.get("")
def dashboard():
    """Every ward, with status."""
    return render_template("guardian/dashboard.html", wards=guardian_service.wards_of(current_user))


@bp.get("/wards/<public_id>")
def ward(public_id: str):
    """A ward's data, choices, messages and requests."""
    ward = guardian_service.load_ward_for(current_user, public_id)
    pending = WARD_DELETION.pending(ward.public_id)
    return _ward_page(ward, deletion_form=WardDeletionForm() if pending else None)


def _ward_page(ward: Member, *, deletion_form=None, invite_form=None, status: int = 200):
    consents = consent_service.current_consents(ward)
    return render_template(
        "guardian/ward.html",
        ward=ward,
        consents=consents,
        groups=member_data.inventory_view(ward, consent_count=len(consents)),
        history=consent_service.consent_history(ward, limit=100),
        messages=member_messages(ward),
        requests=deletion_service.member_requests(ward),
        open_deletion=deletion_service.open_request_for(ward),
        due=deletion_service.due_at_for(utcnow()),
        deletion_labels=DELETION_STATUS_LABELS,
        ward_group_titles=WARD_GROUP_TITLES,
        links=guardian_service.links_of_minor(ward),
        actors=ACTOR_LABELS,
        methods=METHOD_LABELS,
        status_labels=NOTIFICATION_STATUS_LABELS,
        kind_labels=NOTIFICATION_KIND_LABELS,
        form=EmptyForm(),
        invite_form=invite_form or InviteForm(),
        deletion_form=deletion_form,
        purposes=PURPOSES,
        pending=guardian_service.pending_confirmation(ward, current_user),
    ), status


@bp.get("/wards/<public_id>/access-log")
def ward_access_log(public_id: str):
    """Who looked at the ward's data: each time staff viewed or exported the record, and why."""
    ward = guardian_service.load_ward_for(current_user, public_id)
    return render_template("member/access_log.html", accesses=staff_access_log(ward), ward=ward)


@bp.post("/wards/<public_id>/consents/<purpose>")
def set_ward_consent(public_id: str, purpose: str):
    """Give or withdraw an optional purpose for a ward (recorded with the guardian as actor)."""
    ward = guardian_service.load_ward_for(current_user, public_id)
    if purpose not in OPTIONAL_PURPOSES:
        abort(404)
    form = ConsentForm()
    if not form.validate_on_submit() or form.granted.data not in ("0", "1"):
        view = consent_service.consent_view(ward, purpose)
        return render_page_or_fragment(
            "member/consent_page.html",
            "member/_consent_switch.html",
            status=422,
            consent=view,
            ward=ward,
            status_message=_("That did not work: please use the switch on the page."),
        )
    granted = form.granted.data == "1"
    if granted and consent_service.needs_second_confirmation(ward, purpose):
        return _hold_for_second_confirmation(ward, purpose, public_id)
    if not granted:
        guardian_service.cancel_second_confirmation(ward, current_user)
    view = consent_service.set_consent(
        ward,
        purpose,
        granted,
        actor=Actor.GUARDIAN,
        method=Method.HTMX if wants_fragment() else Method.FORM,
        actor_member=current_user,
        locale=str(current_locale()),
    )
    guardian_service.notify_co_guardians(ward, current_user, purpose, granted)
    db.session.commit()
    return consent_answer(
        view, purpose, granted, back_to=url_for("guardian.ward", public_id=public_id), ward=ward
    )


def _hold_for_second_confirmation(ward: Member, purpose: str, public_id: str):
    """A yes that needs the guardian's second confirmation: say when it comes; it stays off."""
    link = guardian_service.request_second_confirmation(ward, current_user, purpose)
    message = _(
        "%(purpose)s stays off for now. We will send you a second confirmation on %(when)s; "
        "it takes effect only once you confirm through that message.",
        purpose=PURPOSES[purpose].title,
        when=format_moment(link.pending_send_at),
    )
    view = consent_service.consent_view(ward, purpose) if wants_fragment() else None
    db.session.commit()
    if view is not None:
        return render_page_or_fragment(
            "member/consent_page.html",
            "member/_consent_switch_response.html",
            consent=view,
            status_message=message,
            ward=ward,
        )
    flash(message, "status")
    return redirect(url_for("guardian.ward", public_id=public_id) + f"#consent-{purpose}", 303)


@bp.route("/confirm/<token>", methods=["GET", "POST"])
def confirm_second(token: str):
    """The second confirmation ("email plus"): the page says what it confirms; the POST
    records it."""
    link = guardian_service.load_second_confirmation_for(current_user, token)
    ward = db.session.get(Member, link.minor_id)
    form = EmptyForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        purpose = link.pending_purpose
        guardian_service.confirm_second(link, current_user, locale=str(current_locale()))
        db.session.commit()
        flash(_("%(purpose)s is now on.", purpose=PURPOSES[purpose].title), "status")
        return redirect(url_for("guardian.ward", public_id=ward.public_id), 303)
    return render_template(
        "guardian/confirm.html", ward=ward, link=link, purposes=PURPOSES, form=form, token=token
    )


def _ward_export_page(ward: Member, form=None, status: int = 200):
    return export_page(
        subject=ward,
        send_url=url_for("guardian.ward_export_code", public_id=ward.public_id),
        confirm_url=url_for("guardian.export_ward_confirm", public_id=ward.public_id),
        form=form,
        status=status,
    )


@bp.get("/wards/<public_id>/export")
def export_ward(public_id: str):
    """What a copy of the ward's data holds, and how to ask for it."""
    ward = guardian_service.load_ward_for(current_user, public_id)
    pending = WARD_EXPORT.pending(ward.public_id)
    return _ward_export_page(ward, ExportForm() if pending else None)


@bp.post("/wards/<public_id>/export/code")
def ward_export_code(public_id: str):
    """Send a fresh code to the guardian's own verified channel before a ward's data leaves."""
    ward = guardian_service.load_ward_for(current_user, public_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    WARD_EXPORT.send(current_user, ward.public_id)
    return redirect(url_for("guardian.export_ward", public_id=public_id) + "#export-confirm", 303)


@bp.post("/wards/<public_id>/export")
def export_ward_confirm(public_id: str):
    """Check the guardian's fresh code, then send the ward's data in the chosen format."""
    ward = guardian_service.load_ward_for(current_user, public_id)
    form = ExportForm()
    status = 422
    if form.validate_on_submit():
        failed = WARD_EXPORT.check(form, current_user, ward.public_id)
        if failed:
            status = failed
        else:
            data = member_data.export_member_data(
                ward, actor=current_user, file_format=form.file_format.data
            )
            db.session.commit()
            WARD_EXPORT.forget()
            return download(data, form.file_format.data, "ward-data")
    return _ward_export_page(ward, form, status)


@bp.post("/wards/<public_id>/deletion/code")
def ward_deletion_code(public_id: str):
    """Send a fresh code to the guardian's own verified channel before a ward's deletion."""
    ward = guardian_service.load_ward_for(current_user, public_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    if deletion_service.open_request_for(ward) is not None:
        return redirect(url_for("guardian.ward", public_id=public_id) + "#open-deletion", 303)
    WARD_DELETION.send(current_user, ward.public_id)
    return redirect(url_for("guardian.ward", public_id=public_id) + "#ward-deletion", 303)


@bp.post("/wards/<public_id>/deletion")
def request_ward_deletion(public_id: str):
    """Check the guardian's fresh code, then ask for the ward's data to be deleted (decided
    by staff like any request)."""
    ward = guardian_service.load_ward_for(current_user, public_id)
    form = WardDeletionForm()
    existing = deletion_service.open_request_for(ward)
    if existing is not None:
        return show_open_request(existing.public_id)
    status = 422
    if form.validate_on_submit():
        failed = WARD_DELETION.check(form, current_user, ward.public_id)
        if failed:
            status = failed
        else:
            try:
                deletion = deletion_service.request_deletion(
                    ward, requested_by=current_user, reason=form.reason.data
                )
            except Conflict as exc:  # opened meanwhile, by the other guardian or the child
                db.session.rollback()
                return show_open_request(exc.field_errors["open"][0])
            except Invalid as exc:
                db.session.rollback()
                apply_field_errors(form, exc.field_errors)
            else:
                db.session.commit()
                WARD_DELETION.forget()
                flash(_("Your request is received."), "status")
                return redirect(
                    url_for("member.deletion_status", public_id=deletion.public_id), 303
                )
    return _ward_page(ward, deletion_form=form, status=status)


@bp.post("/wards/<public_id>/invite")
def invite_second(public_id: str):
    """Invite a second guardian (at most two)."""
    ward = guardian_service.load_ward_for(current_user, public_id)
    form = InviteForm()
    if form.validate_on_submit():
        try:
            channel, contact = auth_service.parse_identifier(form.contact.data)
            guardian_service.invite_second_guardian(ward, current_user, channel, contact)
        except Invalid as exc:
            # A malformed contact, or a number text messages may not go to: said beside it.
            db.session.rollback()
            reasons = exc.field_errors.get("identifier") or exc.field_errors.get(
                "guardian_contact"
            )
            apply_field_errors(form, {"contact": reasons or [exc.message]})
            return _ward_page(ward, invite_form=form, status=422)
        except Conflict as exc:
            db.session.rollback()
            flash(str(exc.message), "status")
            return redirect(url_for("guardian.ward", public_id=public_id), 303)
        db.session.commit()
        flash(_("We sent the other guardian a link."), "status")
    return redirect(url_for("guardian.ward", public_id=public_id), 303)
