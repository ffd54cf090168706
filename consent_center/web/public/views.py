"""Pages anyone may see: home, the policy and its versions, contact, language."""

from __future__ import annotations

import secrets

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import EmailField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import Length

from ...domain import LOCALE_LABELS, PURPOSES
from ...extensions import csrf, db, limiter
from ...ledger_keys import LEDGER_PUBLIC_KEY_PATH, public_key_pem
from ...services import policies
from ...services.contact import CATEGORIES, ContactMessage, submit_contact
from ...services.errors import Invalid
from ...services.identity import identifier_digest
from ...services.members import set_locale, unsubscribe_policy_emails
from ...services.policy_text import diff_for_reader, render_markdown
from ...services.validation import normalize_email
from ..auth.views import safe_next
from ..forms import AppForm, apply_field_errors
from ..i18n import remember_locale
from ..transactions import read_only

bp = Blueprint("public", __name__)


@bp.get("/")
@read_only
def index():
    """What Consent Center is, and where to start."""
    return render_template("public/index.html", purposes=PURPOSES, policy=policies.current_policy())


@bp.get("/policy")
@read_only
def policy():
    """The policy in effect, in the page's language, with its last-updated date."""
    current = policies.current_policy()
    text = current.text_for_reader(str(get_locale())) if current else None
    return render_template(
        "public/policy.html",
        version=current,
        text=text,
        body=render_markdown(text.body_md) if text else None,
        upcoming=policies.upcoming_policy(),
    )


@bp.get("/policy/versions")
@read_only
def policy_versions():
    """Every published version."""
    current = policies.current_policy()
    return render_template(
        "public/policy_versions.html", versions=policies.published_versions(), current=current
    )


@bp.get("/policy/versions/<int:number>")
@read_only
def policy_version(number: int):
    """One version in the page's language, and what changed from the one before it."""
    locale = str(get_locale())
    version = policies.load_published_version(number)
    previous = policies.previous_version(version)
    text = version.text_for_reader(locale)
    return render_template(
        "public/policy_version.html",
        version=version,
        text=text,
        previous=previous,
        diff=diff_for_reader(locale, previous, version) if previous else None,
        body=render_markdown(text.body_md),
        purposes=PURPOSES,
        current=policies.current_policy(),
    )


class ContactForm(AppForm):
    category = SelectField(
        _l("What is it about?"), choices=lambda: list(CATEGORIES.items()), validate_choice=False
    )
    name = StringField(_l("Your name"), validators=[Length(max=100)])
    email = EmailField(_l("Your email address"), validators=[Length(max=254)])
    message = TextAreaField(_l("Your message"), validators=[Length(max=5000)])
    submission_id = HiddenField()


@bp.get("/p/<int:number>")
def policy_short(number: int):
    """Short link to a policy version, for text messages."""
    return redirect(url_for("public.policy_version", number=number), 301)


@bp.get("/g/<token>")
def guardian_short(token: str):
    """Short form of a guardian's approval link, for text messages."""
    return redirect(url_for("guardian.invitation", token=token), 303)


@bp.get("/gc/<token>")
def guardian_confirm_short(token: str):
    """Short form of a guardian's second-confirmation link, for text messages."""
    return redirect(url_for("guardian.confirm_second", token=token), 303)


def _contact_address_key() -> str:
    """Rate-limit key for the address the acknowledgement goes to (a keyed digest)."""
    typed = (request.form.get("email") or "").strip()
    return "contact-to:" + identifier_digest(normalize_email(typed) or typed.lower())


@bp.route("/contact", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["CONTACT_RATE_LIMIT"], methods=["POST"])
@limiter.limit(
    lambda: current_app.config["CONTACT_RATE_LIMIT_ADDRESS"],
    key_func=_contact_address_key,
    methods=["POST"],
)
def contact():
    """How to reach customer service, and a form that reaches them through the outbox."""
    form = ContactForm()
    if request.method == "GET":
        form.submission_id.data = secrets.token_urlsafe(16)
        if current_user.is_authenticated:
            form.name.data, form.email.data = current_user.name, current_user.email
        if request.args.get("category") in CATEGORIES:
            form.category.data = request.args["category"]
    status = 200
    if form.validate_on_submit():
        data = ContactMessage(
            form.category.data,
            form.name.data,
            form.email.data,
            form.message.data,
            form.submission_id.data,
        )
        member = current_user if current_user.is_authenticated else None
        try:
            submit_contact(data, member, str(get_locale()))
        except Invalid as exc:
            db.session.rollback()
            apply_field_errors(form, exc.field_errors)
            status = 422
        else:
            db.session.commit()
            flash(
                _(
                    "Thank you. Your message is on its way to customer service, and we have "
                    "sent you an acknowledgement."
                ),
                "status",
            )
            return redirect(url_for("public.contact"), 303)
    elif request.method == "POST":
        status = 422
    return render_template("public/contact.html", form=form), status


@bp.route("/unsubscribe/<public_id>", methods=["GET", "POST"])
@csrf.exempt
def unsubscribe(public_id: str):
    """RFC 8058: POST unsubscribes at once (no sign-in, no redirect); GET only asks."""
    if request.method == "POST":
        unsubscribe_policy_emails(public_id)
        db.session.commit()
        return render_template("public/unsubscribed.html")
    return render_template("public/unsubscribe.html", public_id=public_id)


@bp.post("/language")
def choose_language():
    """Switch language; remembered on the account when signed in."""
    locale = request.form.get("locale", "")
    if locale in LOCALE_LABELS:
        session["locale"] = locale
        if current_user.is_authenticated:
            set_locale(current_user, locale)
            db.session.commit()
    response = redirect(safe_next(request.form.get("next")) or url_for("public.index"), 303)
    return remember_locale(response, locale)


@bp.get(LEDGER_PUBLIC_KEY_PATH)
def ledger_public_key():
    """The Ed25519 public key that signs consent receipts and chain heads (docs/ledger.md)."""
    response = Response(public_key_pem(), mimetype="text/plain")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
