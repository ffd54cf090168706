"""The dev mailbox: in development, every email and SMS the app sends, so you can sign in."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template

from ...notify.dev import read_mailbox

bp = Blueprint("dev", __name__, url_prefix="/dev")


@bp.before_request
def development_only() -> None:
    """404 unless the dev mailbox is enabled (development and tests only)."""
    if not current_app.config.get("DEV_MAILBOX"):
        abort(404)


@bp.get("/mailbox")
def mailbox():
    """The newest messages sent through the dev mailbox."""
    return render_template("dev/mailbox.html", messages=read_mailbox())
