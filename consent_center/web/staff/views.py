"""Staff pages (role staff or admin only): notification fan-outs and their progress."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request
from flask_login import current_user, login_required
from sqlalchemy import select

from ...domain import NOTIFICATION_KIND_LABELS, NOTIFICATION_STATUS_LABELS, NotificationStatus
from ...extensions import db
from ...models import FanOut, Notification
from ...services.notifications import fan_out_progress, load_fan_out
from ..htmx import render_page_or_fragment

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
    rows = list(
        db.session.scalars(
            select(Notification)
            .where(Notification.status == status)
            .order_by(Notification.id.desc())
            .limit(200)
        )
    )
    return render_template(
        "staff/notifications.html",
        rows=rows,
        status=status,
        labels=NOTIFICATION_STATUS_LABELS,
        kinds=NOTIFICATION_KIND_LABELS,
    )
