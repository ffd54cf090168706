"""Staff pages (role staff or admin only): the dashboard, notification fan-outs and their
progress. The other areas of the console live beside this module and share its blueprint."""

from __future__ import annotations

import csv
import io
from functools import wraps

from babel.dates import get_timezone_name
from flask import Blueprint, Response, abort, render_template, request
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import select, text

from ...domain import (
    CHANNEL_LABELS,
    MEMBER_STATUS_LABELS,
    NOTIFICATION_KIND_LABELS,
    NOTIFICATION_STATUS_LABELS,
    ROLE_LABELS,
    NotificationStatus,
    Role,
)
from ...extensions import db
from ...models import FanOut, Notification, WebhookSubscription
from ...models.notification import GAVE_UP
from ...services.api_tokens import list_api_tokens
from ...services.dashboard import SERIES_DAYS, consent_series
from ...services.dashboard import dashboard as dashboard_figures
from ...services.localtime import display_zone
from ...services.notifications import fan_out_progress, load_fan_out
from ...services.policies import current_policy, upcoming_policy
from ...services.sms_guard import sms_budget_spent_until
from ..htmx import render_page_or_fragment
from .charts import rate_chart
from .forms import ChartRangeForm

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


@bp.context_processor
def console_context() -> dict:
    """What every console page shows in words: the display time zone's name in the
    reader's language, and the labels of channels and roles (never their stored codes)."""
    zone = display_zone()
    return {
        "display_zone_name": get_timezone_name(zone, locale=get_locale(), width="long"),
        "channel_labels": CHANNEL_LABELS,
        "role_labels": ROLE_LABELS,
    }


def admin_required(view):
    """Only admins (staff get 403); runs after `require_staff`."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if current_user.role != Role.ADMIN:
            abort(403)
        return view(*args, **kwargs)

    return wrapped


def _chart_days() -> int:
    """The chart's period from the address (?days=7|30|90|365; 90 without one); 400 else."""
    form = ChartRangeForm(request.args)
    if "days" not in request.args:
        return SERIES_DAYS
    if not form.validate():
        abort(400)
    return form.days.data


@bp.get("")
def dashboard():
    """Members, consent, notifications and deletion requests at a glance; the consent chart
    over the period chosen (htmx swaps the chart alone and pushes its address)."""
    days = _chart_days()
    figures = dashboard_figures(days=days)
    chart = rate_chart(figures.days, [(p.purpose, p.title, p.series) for p in figures.purposes])
    form = ChartRangeForm(formdata=None, days=days)
    return render_page_or_fragment(
        "staff/dashboard.html",
        "staff/_consent_chart.html",
        d=figures,
        chart=chart,
        range_form=form,
        channels=CHANNEL_LABELS,
        statuses=list(NotificationStatus),
        labels=NOTIFICATION_STATUS_LABELS,
        member_status_labels=MEMBER_STATUS_LABELS,
        policy=current_policy(),
        upcoming=upcoming_policy(),
        sms_paused_until=sms_budget_spent_until(),
    )


@bp.get("/consent.csv")
def consent_csv():
    """The chart's series as CSV: one row per day, the members then each purpose's share."""
    series = consent_series(days=_chart_days())
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["day", "members", *(f"{key}_share" for key in series.rates)])
    for i, day in enumerate(series.days):
        shares = ("" if r[i] is None else f"{r[i]:.4f}" for r in series.rates.values())
        writer.writerow([day.isoformat(), series.members[i], *shares])
    response = Response(buffer.getvalue(), mimetype="text/csv")
    filename = f"consent-{series.days[0].isoformat()}-{series.days[-1].isoformat()}.csv"
    response.headers["Content-Disposition"] = f"attachment; filename={filename}"
    return response


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
