"""Staff pages (role staff or admin only): the dashboard, notification fan-outs and their
progress. The other areas of the console live beside this module and share its blueprint."""

from __future__ import annotations

from functools import wraps

from flask import Blueprint, abort, render_template, request
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import select, text

from ...domain import (
    MEMBER_STATUS_LABELS,
    NOTIFICATION_KIND_LABELS,
    NOTIFICATION_STATUS_LABELS,
    Channel,
    NotificationStatus,
    Role,
)
from ...extensions import db
from ...models import FanOut, Notification, WebhookSubscription
from ...models.notification import GAVE_UP
from ...services.api_tokens import list_api_tokens
from ...services.dashboard import dashboard as dashboard_figures
from ...services.notifications import fan_out_progress, load_fan_out
from ...services.policies import current_policy, upcoming_policy
from ...services.sms_guard import sms_budget_spent_until
from ..htmx import render_page_or_fragment
from .charts import rate_chart

bp = Blueprint("staff", __name__, url_prefix="/staff")

FINAL = {
    NotificationStatus.SENT,
    NotificationStatus.DELIVERED,
    NotificationStatus.FAILED,
    NotificationStatus.DEAD,
}


@bp.before_request
@login_required
def require_staff() -> None:
    """Anonymous: sign in first (login_required). Signed-in non-staff: 403."""
    if not current_user.is_staff:
        abort(403)


def admin_required(view):
    """Only admins (staff get 403); runs after `require_staff`."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if current_user.role != Role.ADMIN:
            abort(403)
        return view(*args, **kwargs)

    return wrapped


@bp.get("")
def dashboard():
    """Members, consent, notifications and deletion requests at a glance."""
    figures = dashboard_figures()
    chart = rate_chart(figures.days, [(p.purpose, p.title, p.series) for p in figures.purposes])
    return render_template(
        "staff/dashboard.html",
        d=figures,
        chart=chart,
        channels=list(Channel),
        statuses=list(NotificationStatus),
        labels=NOTIFICATION_STATUS_LABELS,
        member_status_labels=MEMBER_STATUS_LABELS,
        policy=current_policy(),
        upcoming=upcoming_policy(),
        sms_paused_until=sms_budget_spent_until(),
    )


@bp.app_template_filter("fan_out_cause")
def fan_out_cause(cause: str) -> str:
    """What caused a fan-out, in words ("policy_version:3" is "Policy version 3")."""
    kind, _sep, ref = cause.partition(":")
    if kind == "policy_version":
        return str(_l("Policy version %(n)s", n=ref))
    if kind == "incident_notice":
        return str(_l("Incident notice %(id)s", id=ref[:8]))
    return cause


@bp.get("/fan-outs")
def fan_outs():
    """Every bulk send, newest first."""
    rows = list(db.session.scalars(select(FanOut).order_by(FanOut.id.desc()).limit(100)))
    return render_template("staff/fan_outs.html", fan_outs=rows, kinds=NOTIFICATION_KIND_LABELS)


@bp.get("/fan-outs/<public_id>")
def fan_out(public_id: str):
    """One fan-out's progress; htmx polls the fragment until every message is final."""
    fan = load_fan_out(public_id)
    counts = fan_out_progress(fan)
    done = sum(counts[s] for s in FINAL)
    total = sum(counts.values())
    return render_page_or_fragment(
        "staff/fan_out.html",
        "staff/_fan_out_progress.html",
        fan=fan,
        counts=counts,
        done=done,
        total=total,
        finished=done >= total,
        labels=NOTIFICATION_STATUS_LABELS,
        kinds=NOTIFICATION_KIND_LABELS,
    )


@bp.get("/notifications")
def notifications():
    """Messages by status (default: dead ones, which gave up after retries)."""
    status = request.args.get("status", NotificationStatus.DEAD)
    if status not in set(NotificationStatus):
        abort(404)
    query = select(Notification).where(Notification.status == status)
    if status in (NotificationStatus.FAILED, NotificationStatus.DEAD):
        query = query.where(text(GAVE_UP))  # so it reads ix_notification_gave_up
    rows = list(db.session.scalars(query.order_by(Notification.id.desc()).limit(200)))
    return render_template(
        "staff/notifications.html",
        rows=rows,
        status=status,
        labels=NOTIFICATION_STATUS_LABELS,
        kinds=NOTIFICATION_KIND_LABELS,
    )


@bp.get("/integrations")
def integrations():
    """API tokens and webhook subscriptions (managed with `flask api-token` and
    `flask webhooks`; secrets are never shown here)."""
    subscriptions = list(
        db.session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.created_at))
    )
    return render_template(
        "staff/integrations.html", tokens=list_api_tokens(), subscriptions=subscriptions
    )
