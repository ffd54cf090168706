"""The member's own pages: what we hold, consents, history and receipts, profile, export."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required

from ...domain import (
    ACTOR_LABELS,
    DELETION_STATUS_LABELS,
    METHOD_LABELS,
    OPTIONAL_PURPOSES,
    PROFILE_BOOKKEEPING,
    PURPOSES,
    Actor,
    Channel,
    MemberStatus,
    Method,
)
from ...extensions import db
from ...models import PolicyVersion
from ...services import auth as auth_service
from ...services import consents as consent_service
from ...services import guardians as guardian_service
from ...services import member_data
from ...services import sessions as session_service
from ...services.access_log import staff_access_log
from ...services.errors import Invalid
from ...services.members import (
    ProfileChanges,
    is_minor_born,
    pending_birth_date_review,
    remove_phone,
    update_profile,
)
from ...services.policies import (
    acknowledge_policy_notice,
)
from ..auth.forms import CodeForm
from ..consent_answers import consent_answer
from ..forms import apply_field_errors, check_code_form
from ..gpc import ask_to_confirm, gpc_signal
from ..htmx import render_page_or_fragment, wants_fragment
from ..i18n import current_locale, remember_locale
from ..sessions import forget_session, renew_session
from ..transactions import read_only
from .forms import ConsentForm, EmptyForm, ProfileForm

bp = Blueprint("member", __name__, url_prefix="/me")

CONTACT_TOKENS = "contact_change_tokens"
# The contact change waiting for the account holder's code: its token, where the code went
# (masked), and the new email and/or phone.
CONTACT_PROOF = "contact_change_proof"


# What a minor awaiting a guardian may use: the status page, and nothing else of /me.
AWAITING_ENDPOINTS = {"member.awaiting_guardian", "member.resend_guardian_link"}


@bp.before_request
@login_required
def require_sign_in():
    """Every page here is the signed-in member's own; a minor awaiting a guardian sees only
    the status of that request."""
    if (
        current_user.status == MemberStatus.AWAITING_GUARDIAN
        and request.endpoint not in AWAITING_ENDPOINTS
    ):
        return redirect(url_for("member.awaiting_guardian"), 303)
    return None


@bp.get("")
@read_only
def overview():
    """What we hold about you, and your consent switches."""
    overview = member_data.member_overview(current_user)
    return render_template(
        "member/overview.html",
        consents=overview.consents,
        groups=overview.groups,
        policy_effective_at=overview.policy_effective_at,
        notice=overview.notice,
        open_deletion=overview.open_deletion,
        deletion_labels=DELETION_STATUS_LABELS,
        bookkeeping=PROFILE_BOOKKEEPING,
        status_message=None,
    )


@bp.get("/data/<table>")
@read_only
def inventory_group(table: str):
    """Every field of one part of your data and why we keep it; /me opens it in place."""
    group = member_data.inventory_group(current_user, table)
    return render_page_or_fragment(
        "member/inventory_group.html", "member/_inventory_table.html",
        group=group, bookkeeping=PROFILE_BOOKKEEPING,
    )


@bp.post("/guardian-choices/confirm")
def confirm_guardian_choices():
    """Now of age: keep the choices your guardian made (change any with its switch)."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    guardian_service.confirm_guardian_choices(current_user, locale=str(current_locale()))
    db.session.commit()
    flash(_("Your choices are confirmed. They are now yours."), "status")
    return redirect(url_for("member.overview"), 303)


@bp.post("/policy-notice/<int:number>/ack")
def acknowledge_notice(number: int):
    """Hide the policy-change notice (htmx removes it in place)."""
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400)
    acknowledge_policy_notice(current_user, number)
    db.session.commit()
    if wants_fragment():
        response = make_response("", 200)
        response.vary.add("HX-Request")
        return response
    return redirect(url_for("member.overview"), 303)


@bp.post("/consents/<purpose>")
def set_consent(purpose: str):
    """Give or withdraw one optional purpose: one action, either way."""
    if purpose not in OPTIONAL_PURPOSES:
        abort(404)
    form = ConsentForm()
    if not form.validate_on_submit() or form.granted.data not in ("0", "1"):
        view = consent_service.consent_view(current_user, purpose)
        return render_page_or_fragment(
            "member/consent_page.html",
            "member/_consent_switch.html",
            status=422,
            consent=view,
            status_message=_("That did not work: please use the switch on the page."),
        )
    granted = form.granted.data == "1"
    try:
        view = consent_service.set_consent(
            current_user,
            purpose,
            granted,
            actor=Actor.MEMBER,
            method=Method.HTMX if wants_fragment() else Method.FORM,
            actor_member=current_user,
            locale=str(current_locale()),
            gpc=gpc_signal(),
        )
    except consent_service.GpcConfirmationNeeded:
        return ask_to_confirm(current_user, purpose)
    db.session.commit()
    return consent_answer(
        view, purpose, granted, back_to=url_for("member.overview"), receipt_id=view.receipt_id
    )


@bp.get("/history")
@read_only
def history():
    """Every consent given or withdrawn, newest first, each with its receipt."""
    return render_template(
        "member/history.html",
        events=consent_service.consent_history(current_user),
        purposes=PURPOSES,
        actors=ACTOR_LABELS,
        methods=METHOD_LABELS,
    )


@bp.get("/access-log")
@read_only
def access_log():
    """Who looked at my data: each time staff viewed or exported my record, and why."""
    return render_template(
        "member/access_log.html", accesses=staff_access_log(current_user), ward=None
    )


@bp.get("/receipts/<receipt_id>")
@read_only
def receipt(receipt_id: str):
    """One consent receipt."""
    event = consent_service.load_receipt_for(current_user, receipt_id)
    document = consent_service.kantara_receipt(event, current_user, _policy_url(event))
    return render_template(
        "member/receipt.html",
        event=event,
        document=document,
        purposes=PURPOSES,
        actors=ACTOR_LABELS,
        methods=METHOD_LABELS,
    )


@bp.get("/receipts/<receipt_id>.json")
@read_only
def receipt_json(receipt_id: str):
    """The receipt as Kantara Consent Receipt v1.1 JSON, as a download."""
    event = consent_service.load_receipt_for(current_user, receipt_id)
    body = consent_service.receipt_json(event, current_user, _policy_url(event))
    return Response(
        body,
        mimetype="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="consent-receipt-{receipt_id}.json"'
        },
    )


def _policy_url(event) -> str:
    if event.policy_version_id is None:
        return url_for("public.policy", _external=True)
    version = db.session.get(PolicyVersion, event.policy_version_id)
    return url_for("public.policy_version", number=version.number, _external=True)


@bp.route("/profile", methods=["GET", "POST"])
def profile():
    """Correct your name, gender, language and contact details."""
    form = ProfileForm(obj=current_user if request.method == "GET" else None)
    if request.method == "GET":
        form.gender.data = current_user.gender or ""
    status = 200
    if form.validate_on_submit():
        changes = ProfileChanges(
            name=form.name.data,
            gender=form.gender.data or None,
            locale=form.locale.data,
            email=form.email.data,
            phone=form.phone.data,
            birth_date=form.birth_date.data,
        )
        try:
            update = update_profile(current_user, changes)
        except Invalid as exc:
            db.session.rollback()
            apply_field_errors(form, exc.field_errors)
            status = 422
        else:
            db.session.commit()
            if update.birth_date_review is not None:
                flash(
                    _(
                        "Your new date of birth would make you an adult or a minor in our "
                        "records, so our staff check it before it takes effect; until then we "
                        "keep the one we have. Your other changes are saved."
                    ),
                    "status",
                )
            change = update.contact_change
            if change is not None:
                proof = change.proof
                session[CONTACT_PROOF] = {
                    "token": proof.token,
                    "channel": proof.channel,
                    "to": proof.masked_to,
                    "new": change.new_values,
                }
                return redirect(url_for("member.confirm_identity"), 303)
            flash(_("Your profile is saved."), "status")
            return remember_locale(redirect(url_for("member.overview"), 303), current_user.locale)
    elif request.method == "POST":
        status = 422
    review = pending_birth_date_review(current_user)
    return render_template(
        "member/profile.html",
        form=form,
        remove_form=EmptyForm(),
        birth_date_review=review,
        becomes_minor=review is not None and is_minor_born(review.requested_birth_date),
    ), status


@bp.route("/profile/confirm-identity", methods=["GET", "POST"])
def confirm_identity():
    """Prove it is you, with a code sent to your current details, before a contact change."""
    pending = session.get(CONTACT_PROOF)
    if not pending:
        return redirect(url_for("member.profile"), 303)
    form = CodeForm()
    status = 200
    if form.validate_on_submit():
        code_requests, failed = check_code_form(
            form,
            lambda: auth_service.confirm_contact_proof(
                current_user, pending["token"], form.code.data, pending["new"]
            ),
            on_lockout=lambda: session.pop(CONTACT_PROOF, None),
        )
        if failed:
            status = failed
        else:
            session.pop(CONTACT_PROOF, None)
            session[CONTACT_TOKENS] = [[c.token, c.channel, c.masked_to] for c in code_requests]
            return redirect(url_for("member.verify_contact"), 303)
    elif request.method == "POST":
        status = 422
    return render_template(
        "member/confirm_identity.html",
        form=form,
        channel=pending["channel"],
        sent_to=pending["to"],
    ), status


@bp.route("/profile/verify", methods=["GET", "POST"])
def verify_contact():
    """Confirm a new email or phone with the code sent to it."""
    pending = session.get(CONTACT_TOKENS) or []
    if not pending:
        return redirect(url_for("member.profile"), 303)
    token, channel, masked = pending[0]
    form = CodeForm()
    status = 200
    if form.validate_on_submit():
        _done, failed = check_code_form(
            form,
            lambda: auth_service.confirm_contact_change(current_user, token, form.code.data),
            on_lockout=lambda: session.__setitem__(CONTACT_TOKENS, pending[1:]),
        )
        if failed:
            status = failed
        else:
            # The change ended every session of the member: this device gets a new one.
            renew_session()
            session[CONTACT_TOKENS] = pending[1:]
            if pending[1:]:
                return redirect(url_for("member.verify_contact"), 303)
            flash(_("Your new contact details are confirmed."), "status")
            return redirect(url_for("member.overview"), 303)
    elif request.method == "POST":
        status = 422
    return render_template(
        "member/verify_contact.html",
        form=form,
        channel=channel,
        sent_to=masked,
    ), status


@bp.post("/profile/phone/verify")
def verify_phone():
    """Send a code to confirm the mobile number already on the profile."""
    form = EmptyForm()
    if not form.validate_on_submit() or not current_user.phone:
        abort(400)
    code_request = auth_service.request_contact_change(
        current_user, Channel.SMS, current_user.phone
    )
    db.session.commit()
    session[CONTACT_TOKENS] = [[code_request.token, code_request.channel, code_request.masked_to]]
    return redirect(url_for("member.verify_contact"), 303)


@bp.post("/profile/phone/remove")
def remove_phone_number():
    """Remove your mobile number."""
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400)
    remove_phone(current_user)
    db.session.commit()
    flash(_("Your mobile number is removed."), "status")
    return redirect(url_for("member.profile"), 303)


@bp.post("/sign-out-everywhere")
def sign_out_everywhere():
    """Sign out on every device, this one included."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    session_service.sign_out_everywhere(current_user)
    db.session.commit()
    forget_session()
    flash(_("You are signed out on every device. Sign in again with a new code."), "status")
    return redirect(url_for("auth.sign_in"), 303)
