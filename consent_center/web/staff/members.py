"""Staff: find a member, and read their record (read-only; viewing is audited)."""

from __future__ import annotations

from flask import render_template, request
from flask_login import current_user

from ...domain import (
    DELETION_STATUS_LABELS,
    GUARDIAN_STATUS_LABELS,
    MEMBER_STATUS_LABELS,
    METHOD_LABELS,
    NOTIFICATION_KIND_LABELS,
    NOTIFICATION_STATUS_LABELS,
    ROLE_LABELS,
    STAFF_ACCESS_REASONS,
    STAFF_ACTOR_LABELS,
)
from ...extensions import db
from ...services.directory import SEARCH_LIMIT, search_members, view_member
from ..htmx import render_page_or_fragment
from .forms import MemberSearchForm
from .views import bp


@bp.get("/members")
def members():
    """Active search by name, email, phone or member number; the URL is the search."""
    form = MemberSearchForm(request.args)
    query = (form.q.data or "") if form.validate() else ""
    results = search_members(current_user, query)
    return render_page_or_fragment(
        "staff/members.html",
        "staff/_member_results.html",
        form=form,
        query=query,
        results=results,
        limit=SEARCH_LIMIT,
        status_labels=MEMBER_STATUS_LABELS,
        role_labels=ROLE_LABELS,
    )


@bp.get("/members/<public_id>")
def member(public_id: str):
    """One member's record: inventory, consent ledger, messages, requests, guardians. The
    reason comes first (the member sees it, with the time and the role, never the name)."""
    reason = request.args.get("reason", "")
    if reason not in STAFF_ACCESS_REASONS:
        return render_template(
            "staff/member_reason.html", public_id=public_id, reasons=STAFF_ACCESS_REASONS
        )
    record = view_member(current_user, public_id, reason)
    db.session.commit()  # the audit entry of this viewing
    return render_template(
        "staff/member.html",
        r=record,
        m=record.member,
        status_labels=MEMBER_STATUS_LABELS,
        role_labels=ROLE_LABELS,
        method_labels=METHOD_LABELS,
        actor_labels=STAFF_ACTOR_LABELS,
        kind_labels=NOTIFICATION_KIND_LABELS,
        notification_labels=NOTIFICATION_STATUS_LABELS,
        deletion_labels=DELETION_STATUS_LABELS,
        guardian_labels=GUARDIAN_STATUS_LABELS,
    )
