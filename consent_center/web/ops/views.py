"""Probes for load balancers and orchestrators: alive (`/healthz`) and ready (`/readyz`)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from ...extensions import db, limiter
from ..transactions import read_only

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    """The process is alive and answering; touches nothing else (a liveness probe)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@read_only
def readyz():
    """Whether this node can serve: the database and the rate-limit storage (Redis in
    production) both answer. 503 names the one that failed, never where it is or why."""
    checks = {"database": _database_answers(), "rate_limit_storage": _storage_answers()}
    ready = all(checks.values())
    body = {
        "status": "ok" if ready else "unavailable",
        "checks": {name: "ok" if up else "unreachable" for name, up in checks.items()},
    }
    return jsonify(body), 200 if ready else 503


def _database_answers() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # any driver error means "not reachable"
        current_app.logger.warning("readiness: database unreachable")
        db.session.rollback()
        return False
    return True


def _storage_answers() -> bool:
    try:
        up = bool(limiter.storage.check())  # a PING on Redis; memory storage is always up
    except Exception:
        up = False
    if not up:
        current_app.logger.warning("readiness: rate-limit storage unreachable")
    return up
