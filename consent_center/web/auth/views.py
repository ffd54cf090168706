"""Registration, password-less sign-in and sign-out."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required

from ...extensions import db, limiter
from ...services import auth as auth_service
from ...services.errors import Invalid
from ...services.guardians import wards_of
from ...services.members import RegistrationData, register_member
from ..forms import apply_field_errors, check_code_form
from ..i18n import remember_locale
from ..sessions import begin_session, end_session
from .forms import CodeForm, RegisterForm, SignInForm

bp = Blueprint("auth", __name__)

PENDING_TOKEN = "sign_in_token"
PENDING_TO = "sign_in_to"
# Set when the pending code comes from a registration (the code page words it for both cases).
PENDING_REGISTERED = "sign_in_registered"


def _ip_limit() -> str:
    return current_app.config["SIGN_IN_RATE_LIMIT_IP"]


def safe_next(target: str | None) -> str | None:
    """Only same-site paths may be redirected to after sign-in."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def _send_code_and_continue(code_request):
    """Commit (a worker sends the code from the outbox), remember the pending sign-in."""
    db.session.commit()
    session[PENDING_TOKEN] = code_request.token
    session[PENDING_TO] = code_request.masked_to
    return redirect(url_for("auth.enter_code", next=safe_next(request.args.get("next"))), 303)


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"])
def register():
    """Register with name, contact and date of birth; optional purposes start unticked."""
    if current_user.is_authenticated:
        return redirect(url_for("member.overview"))
    form = RegisterForm()
    if request.method == "GET" and "locale" in session:
        form.locale.data = session["locale"]
    if form.validate_on_submit():
        purposes = {p for p in ("trend_analysis", "advertising") if getattr(form, p).data}
        data = RegistrationData(
            name=form.name.data,
            email=form.email.data,
            phone=form.phone.data,
            gender=form.gender.data or None,
            birth_date=form.birth_date.data,
            locale=form.locale.data,
            purposes=purposes,
            guardian_contact=form.guardian_contact.data,
        )
        try:
            registration = register_member(data)
        except Invalid as exc:
            db.session.rollback()
            apply_field_errors(form, exc.field_errors)
        else:
            session[PENDING_REGISTERED] = True
            return _send_code_and_continue(registration.code)
    status = 422 if request.method == "POST" else 200
    return render_template("auth/register.html", form=form), status


@bp.route("/sign-in", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"])
def sign_in():
    """Ask for a one-time code by email or SMS."""
    if current_user.is_authenticated:
        return redirect(url_for("member.overview"))
    form = SignInForm()
    if form.validate_on_submit():
        try:
            code_request = auth_service.request_sign_in_code(form.identifier.data)
        except Invalid as exc:
            db.session.rollback()
            apply_field_errors(form, exc.field_errors)
        else:
            session.pop(PENDING_REGISTERED, None)
            return _send_code_and_continue(code_request)
    status = 422 if request.method == "POST" else 200
    return render_template("auth/sign_in.html", form=form), status


@bp.route("/sign-in/code", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"])
def enter_code():
    """Enter the code: the same page whether or not the account exists."""
    token = session.get(PENDING_TOKEN)
    if not token:
        return redirect(url_for("auth.sign_in"), 303)
    form = CodeForm()
    status = 200
    if form.validate_on_submit():
        member, failed = check_code_form(
            form,
            lambda: auth_service.complete_sign_in(token, form.code.data),
            on_lockout=lambda: session.pop(PENDING_TOKEN, None),
        )
        if failed:
            status = failed
        else:
            next_url = safe_next(request.args.get("next"))
            begin_session(member)
            session["is_guardian"] = bool(wards_of(member))
            response = redirect(next_url or url_for("member.overview"), 303)
            return remember_locale(response, member.locale)
    elif request.method == "POST":
        status = 422
    return render_template(
        "auth/enter_code.html",
        form=form,
        sent_to=session.get(PENDING_TO),
        registered=session.get(PENDING_REGISTERED, False),
    ), status


@bp.route("/sign-out", methods=["POST"])
@login_required
def sign_out():
    """Sign out: this device's session ends on the server, so a copy of the cookie dies too."""
    end_session()
    return redirect(url_for("public.index", signed_out=1), 303)
