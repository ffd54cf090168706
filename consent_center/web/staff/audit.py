"""Staff: the audit log with the ledger's consent changes merged in, filtered, and its
export as CSV (streamed)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

from flask import Response, request, stream_with_context
from flask_login import current_user

from ...extensions import db
from ...services.audit import (
    AuditFilters,
    audit_actions,
    audit_page,
    iter_audit_rows,
    record_audit,
)
from ...services.localtime import local_day_start
from ..htmx import render_page_or_fragment
from ..inputs import page_arg
from .forms import AuditFilterForm
from .views import bp

CSV_COLUMNS = (
    "created_at",
    "action",
    "actor",
    "actor_role",
    "subject",
    "details",
    "chain",
    "seq",
    "prev_hash",
    "hash",
)
# A spreadsheet would run a cell starting with one of these as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _filters(form: AuditFilterForm) -> AuditFilters:
    if not form.validate():
        return AuditFilters()
    until = form.until.data
    return AuditFilters(
        actor=(form.actor.data or "").strip() or None,
        action=(form.action.data or "").strip() or None,
        since=local_day_start(form.since.data) if form.since.data else None,
        until=local_day_start(until + timedelta(days=1)) if until else None,
    )


@bp.get("/audit")
def audit():
    """The log and the ledger's consent changes, newest first, filtered by actor, action
    and dates; htmx swaps the entries."""
    form = AuditFilterForm(request.args)
    number = page_arg()
    rows, more = audit_page(_filters(form), number)
    return render_page_or_fragment(
        "staff/audit.html",
        "staff/_audit_results.html",
        form=form,
        rows=rows,
        page_number=number,
        more=more,
        actions=audit_actions(),
        args={k: v for k, v in request.args.items() if k != "page" and v},
    )


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


@bp.get("/audit.csv")
def audit_csv():
    """The filtered log as CSV, oldest first, streamed row by row (the export is audited)."""
    filters = _filters(AuditFilterForm(request.args))
    record_audit(
        "audit.exported",
        actor=current_user,
        actor_filter=filters.actor,
        action_filter=filters.action,
        since=filters.since.isoformat() if filters.since else None,
        until=filters.until.isoformat() if filters.until else None,
    )
    db.session.commit()

    def generate():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        for n, row in enumerate(iter_audit_rows(filters), start=1):
            writer.writerow(
                _cell(v)
                for v in (
                    row.created_at.isoformat(),
                    row.action,
                    row.actor_public_id,
                    row.actor_role,
                    row.subject_public_id,
                    json.dumps(row.details, sort_keys=True, ensure_ascii=False),
                    row.chain,
                    row.seq,
                    row.prev_hash,
                    row.hash,
                )
            )
            if n % 500 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    response = Response(stream_with_context(generate()), mimetype="text/csv")
    response.headers["Content-Disposition"] = "attachment; filename=audit-log.csv"
    return response
