"""Pages anyone may see: home, the policy and its versions, contact, language, health."""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from sqlalchemy import text

from ...domain import LOCALE_LABELS, PURPOSES
from ...extensions import db, login_manager
from ...models import Member
from ...services import policies
from ...services.members import set_locale
from ..auth.views import safe_next

bp = Blueprint("public", __name__)


@login_manager.user_loader
def load_member(public_id: str) -> Member | None:
    from ...services.members import load_member_by_public_id

    member = load_member_by_public_id(public_id)
    return member if member is not None and member.is_active else None


@bp.get("/")
def index():
    """What Consent Center is, and where to start."""
    return render_template("public/index.html", purposes=PURPOSES, policy=policies.current_policy())


@bp.get("/policy")
def policy():
    """The policy in effect, with its last-updated date."""
    current = policies.current_policy()
    return render_template(
        "public/policy.html",
        version=current,
        body=policies.render_markdown(current.body_md) if current else None,
        upcoming=policies.upcoming_policy(),
    )


@bp.get("/policy/versions")
def policy_versions():
    """Every published version."""
    current = policies.current_policy()
    return render_template(
        "public/policy_versions.html", versions=policies.published_versions(), current=current
    )


@bp.get("/policy/versions/<int:number>")
def policy_version(number: int):
    """One version, and what changed from the one before it."""
    version = policies.load_published_version(number)
    previous = policies.previous_version(version)
    diff = policies.diff_texts(previous.body_md, version.body_md) if previous else None
    return render_template(
        "public/policy_version.html",
        version=version,
        previous=previous,
        diff=diff,
        body=policies.render_markdown(version.body_md),
        purposes=PURPOSES,
        current=policies.current_policy(),
    )


@bp.get("/contact")
def contact():
    """How to reach the company's customer service center."""
    return render_template("public/contact.html")


@bp.post("/language")
def choose_language():
    """Switch language; remembered on the account when signed in."""
    locale = request.form.get("locale", "")
    if locale in LOCALE_LABELS:
        session["locale"] = locale
        if current_user.is_authenticated:
            set_locale(current_user, locale)
            db.session.commit()
    return redirect(safe_next(request.form.get("next")) or url_for("public.index"), 303)


@bp.get("/healthz")
def healthz():
    """Liveness and database reachability, for load balancers and `make run`."""
    backend = db.engine.dialect.name
    try:
        db.session.execute(text("SELECT 1"))
        reachable = True
    except Exception:  # any driver error means "not reachable"
        current_app.logger.warning("health check: database unreachable")
        db.session.rollback()
        reachable = False
    body = {
        "status": "ok" if reachable else "unavailable",
        "database": {"backend": backend, "reachable": reachable},
    }
    return jsonify(body), 200 if reachable else 503
