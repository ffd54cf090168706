"""Global Privacy Control (`Sec-GPC: 1`): honoured on every page a signed-in member loads,
with a confirmation step when they turn advertising on again while sending it; and the
site's `/.well-known/gpc.json`."""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    jsonify,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required
from wtforms import HiddenField

from ..domain import PURPOSES, Method
from ..extensions import db
from ..services import consents as consent_service
from ..services.gpc import GPC_PURPOSES, apply_gpc_signal, grant_despite_gpc
from .consent_answers import consent_answer
from .forms import AppForm
from .htmx import render_page_or_fragment, wants_fragment
from .i18n import current_locale

# When this site's GPC handling last changed (the `lastUpdate` of gpc.json).
GPC_LAST_UPDATE = "2026-11-25"
# Paths that never carry a member's page view: assets, the API, provider callbacks.
SKIPPED_PREFIXES = ("/static/", "/api/", "/webhooks/", "/.well-known/")

bp = Blueprint("gpc", __name__)


class GpcOverrideForm(AppForm):
    # "1": the member confirmed they want the purpose on despite the signal.
    override_gpc = HiddenField()


def gpc_signal() -> bool:
    """True when the request carries `Sec-GPC: 1` (the only value with a meaning)."""
    return request.headers.get("Sec-GPC", "").strip() == "1"


def honour_gpc():
    """Withdraw advertising for a signed-in member whose browser sends GPC, on any page they
    load, and say why. Costs nothing without the header. Answers for no view: turning it on
    again while sending GPC is the consent service's rule (`GpcConfirmationNeeded`)."""
    if request.method != "GET" or not gpc_signal() or request.path.startswith(SKIPPED_PREFIXES):
        return None
    if not current_user.is_authenticated:
        return None
    views = apply_gpc_signal(current_user)
    if views:
        db.session.commit()
        for view in views:
            flash(
                _(
                    "Your browser sent a Global Privacy Control signal, which asks us not to use "
                    "your information for advertising, so we turned off %(purpose)s. You can "
                    "turn it on again on this page if you want to.",
                    purpose=PURPOSES[view.purpose].title,
                ),
                "status",
            )
            flash(view.receipt_id, "receipt")
    return None


def ask_to_confirm(member, purpose: str):
    """The confirmation asked when the member turns a GPC purpose on while sending GPC."""
    return render_page_or_fragment(
        "member/gpc_confirm.html",
        "member/_gpc_confirm.html",
        consent=consent_service.consent_view(member, purpose),
        form=GpcOverrideForm(override_gpc="1"),
    )


@bp.post("/me/consents/<purpose>/override-gpc")
@login_required
def override(purpose: str):
    """Turn advertising on although the browser sends GPC, after the member confirmed."""
    if purpose not in GPC_PURPOSES:
        abort(404)
    form = GpcOverrideForm()
    if not form.validate_on_submit() or form.override_gpc.data != "1":
        abort(400)
    view = grant_despite_gpc(
        current_user,
        purpose,
        gpc_sent=gpc_signal(),
        method=Method.HTMX if wants_fragment() else Method.FORM,
        locale=str(current_locale()),
    )
    db.session.commit()
    return consent_answer(
        view, purpose, True, back_to=url_for("member.overview"), receipt_id=view.receipt_id
    )


@bp.get("/.well-known/gpc.json")
def gpc_json():
    """This site honours Global Privacy Control."""
    response = jsonify({"gpc": True, "lastUpdate": GPC_LAST_UPDATE})
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


def init_app(app: Flask) -> None:
    app.before_request(honour_gpc)
    app.register_blueprint(bp)
