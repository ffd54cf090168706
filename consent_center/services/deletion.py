"""Deletion requests: asked for by the member (re-authenticated), decided by staff on the
policy's terms, completed by erasure by the due date."""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import case, select

from ..clock import utcnow
from ..domain import (
    OPEN_DELETION_STATUSES,
    DeletionStatus,
    MemberStatus,
    RefusalGround,
    StaffAccessReason,
)
from ..extensions import db
from ..models import DeletionRequest, Member
from .access_log import record_staff_access
from .audit import record_audit
from .erasure import erase_member
from .errors import Conflict, Invalid, NotAllowed, NotFound
from .guardianship import is_guardian_of
from .localtime import add_working_days, local_day_end, local_today
from .notifications import enqueue_notification, member_subject
from .reach import ACCOUNT, DECISION, contacts, first_contact
from .validation import secret_text_problem


def due_at_for(received_at: datetime) -> datetime:
    """When a request received at `received_at` must be answered: the end of the
    DELETION_DUE_WORKING_DAYS-th working day after the day it arrived, counted in the display
    time zone on the calendar of the company's jurisdiction (COMPANY_JURISDICTION), so it
    never falls on a weekend or a public holiday, and China's make-up working days count.
    The one place a due date is computed; pages and messages show the stored `due_at`."""
    config = current_app.config
    due_day = add_working_days(
        local_today(received_at),
        config["DELETION_DUE_WORKING_DAYS"],
        config["COMPANY_JURISDICTION"],
    )
    return local_day_end(due_day)


def open_request_for(member: Member) -> DeletionRequest | None:
    return db.session.scalars(
        select(DeletionRequest).where(
            DeletionRequest.member_id == member.id,
            DeletionRequest.status.in_(OPEN_DELETION_STATUSES),
        )
    ).first()


def _notify(request: DeletionRequest, member: Member, kind: str, **context) -> None:
    """Tell the member by email (and SMS when they chose it) about their request."""
    context = dict(
        context,
        request_id=request.public_id,
        due_at=request.due_at,
        refusal_ground=request.refusal_ground,
        refusal_explanation=request.refusal_explanation,
    )
    for channel, recipient in contacts(member, DECISION).items():
        enqueue_notification(
            member=member,
            channel=channel,
            kind=kind,
            dedupe_key=f"{kind}:{request.public_id}:{channel}",
            recipient=recipient,
            locale=member.locale,
            context=context,
        )


def request_deletion(
    member: Member, *, requested_by: Member, reason: str | None
) -> DeletionRequest:
    """Open a deletion request (the caller has re-authenticated the requester).

    :raises Conflict: when a request is already open (its id is in the message's args).
    :raises Invalid: for a reason holding a card number or credential.
    """
    if member.status == MemberStatus.ERASED:
        raise NotFound(_l("No such account."))
    existing = open_request_for(member)
    if existing is not None:
        raise Conflict(
            _l("You already have an open deletion request."), {"open": [existing.public_id]}
        )
    reason = (reason or "").strip() or None
    if reason and len(reason) > 2000:
        raise Invalid(
            _l("Use at most 2000 characters."), {"reason": [_l("Use at most 2000 characters.")]}
        )
    if problem := secret_text_problem(reason):
        raise Invalid(problem, {"reason": [problem]})
    now = utcnow()
    # Where the completion notice will go, once the contacts themselves are erased.
    notify_channel, notify_to = first_contact(member, ACCOUNT) or (None, None)
    request = DeletionRequest(
        member_id=member.id,
        requested_by_id=requested_by.id,
        status=DeletionStatus.RECEIVED,
        reason=reason,
        received_at=now,
        due_at=due_at_for(now),
        notify_channel=notify_channel,
        notify_to=notify_to,
        notify_locale=member.locale,
    )
    db.session.add(request)
    db.session.flush()
    record_audit(
        "deletion.requested", actor=requested_by, subject=member, request=request.public_id
    )
    _notify(request, member, "deletion_received")
    return request


def load_request_for(actor: Member, public_id: str) -> DeletionRequest:
    """A deletion request the actor may see: their own (or, for staff, any).

    :raises NotFound: otherwise; existence never leaks.
    """
    request = db.session.scalars(
        select(DeletionRequest).where(DeletionRequest.public_id == public_id)
    ).first()
    if request is None:
        raise NotFound(_l("No such request."))
    if actor.is_staff or request.member_id == actor.id or request.requested_by_id == actor.id:
        return request
    if is_guardian_of(actor, request.member_id):
        return request
    raise NotFound(_l("No such request."))


def open_request_for_review(staff: Member, public_id: str) -> DeletionRequest:
    """A request as staff open it to decide: its page shows the member's record, so the
    viewing is audited (reason: deciding a deletion request).

    :raises NotAllowed: for anyone but staff.
    :raises NotFound: for an unknown request.
    """
    _require_staff(staff)
    request = load_request_for(staff, public_id)
    record_staff_access(
        staff,
        subject_of(request),
        reason=StaffAccessReason.DELETION_REQUEST,
        request=request.public_id,
    )
    return request


def subject_of(request: DeletionRequest) -> Member:
    """The member whose data the request is about."""
    return db.session.get(Member, request.member_id)


def may_withdraw(request: DeletionRequest, actor: Member) -> bool:
    """Whether `actor` made this request (and so may withdraw it while it is open)."""
    return request.requested_by_id == actor.id


def withdraw_deletion(request: DeletionRequest, actor: Member) -> None:
    """Withdraw an open request. Only whoever made it may (the member, or the guardian who
    asked); staff decide a request, they never withdraw it.

    :raises NotAllowed: for anyone but the requester.
    :raises Conflict: when it is no longer open.
    """
    if not may_withdraw(request, actor):
        raise NotAllowed(_l("Only the person who made this request can withdraw it."))
    if request.status not in OPEN_DELETION_STATUSES:
        raise Conflict(_l("This request is no longer open."))
    request.status = DeletionStatus.WITHDRAWN
    request.withdrawn_at = utcnow()
    request.notify_to = request.notify_channel = request.notify_locale = None
    record_audit(
        "deletion.withdrawn",
        actor=actor,
        subject=db.session.get(Member, request.member_id),
        request=request.public_id,
    )


def _require_staff(actor: Member) -> None:
    if not actor.is_staff:
        raise NotAllowed(_l("Only staff may decide deletion requests."))


def start_review(request: DeletionRequest, staff: Member) -> None:
    """Mark a received request as being reviewed (so colleagues see someone is on it)."""
    _require_staff(staff)
    if request.status != DeletionStatus.RECEIVED:
        raise Conflict(_l("This request is no longer waiting for review."))
    request.status = DeletionStatus.IN_REVIEW
    record_audit(
        "deletion.review_started",
        actor=staff,
        subject=db.session.get(Member, request.member_id),
        request=request.public_id,
    )


def refuse_deletion(
    request: DeletionRequest, staff: Member, *, ground: str, explanation: str
) -> None:
    """Refuse on exactly one of the policy's five grounds, with a written explanation.

    :raises Invalid: without a valid ground or an explanation.
    :raises Conflict: when the request is not open.
    """
    _require_staff(staff)
    errors: dict[str, list] = {}
    if ground not in set(RefusalGround):
        errors["ground"] = [_l("Choose one of the five grounds the policy allows.")]
    explanation = (explanation or "").strip()
    if len(explanation) < 20:
        errors["explanation"] = [_l("Explain the refusal to the member (at least 20 characters).")]
    if errors:
        raise Invalid(_l("A refusal needs a ground and an explanation."), errors)
    if request.status not in OPEN_DELETION_STATUSES:
        raise Conflict(_l("This request is no longer open."))
    now = utcnow()
    request.status = DeletionStatus.REFUSED
    request.refusal_ground = ground
    request.refusal_explanation = explanation
    request.decided_at, request.decided_by_id = now, staff.id
    request.notify_to = request.notify_channel = request.notify_locale = None
    member = db.session.get(Member, request.member_id)
    record_audit(
        "deletion.refused", actor=staff, subject=member, request=request.public_id, ground=ground
    )
    _notify(request, member, "deletion_refused")


def complete_deletion(request: DeletionRequest, staff: Member) -> None:
    """Complete the request: erase the member, then send the completion notice to the
    contact captured at request time, which is then discarded.

    :raises Conflict: when the request is not open.
    """
    _require_staff(staff)
    if request.status not in OPEN_DELETION_STATUSES:
        raise Conflict(_l("This request is no longer open."))
    member = db.session.get(Member, request.member_id)
    channel, to, locale = request.notify_channel, request.notify_to, request.notify_locale
    erase_member(member, actor=staff, reason="deletion_request")
    now = utcnow()
    request.status = DeletionStatus.COMPLETED
    request.decided_at, request.decided_by_id = now, staff.id
    request.notify_to = request.notify_channel = request.notify_locale = None
    record_audit("deletion.completed", actor=staff, subject=member, request=request.public_id)
    if to:
        # Not linked to the tombstone; the worker scrubs the address once it is sent.
        enqueue_notification(
            member=None,
            channel=channel,
            kind="deletion_completed",
            dedupe_key=f"deletion_completed:{request.public_id}",
            recipient=to,
            locale=locale or "en",
            context={"request_id": request.public_id},
            # The tombstone only: a digest of the erased address would outlive the erasure.
            about=(member_subject(member),),
        )


def deletion_queue(status: str | None = None) -> list[tuple[DeletionRequest, bool]]:
    """Requests ordered by due date, each with whether it is overdue."""
    query = select(DeletionRequest)
    if status:
        query = query.where(DeletionRequest.status == status)
    else:
        query = query.where(DeletionRequest.status.in_(OPEN_DELETION_STATUSES))
    open_first = case((DeletionRequest.status.in_(OPEN_DELETION_STATUSES), 0), else_=1)
    rows = db.session.scalars(query.order_by(open_first, DeletionRequest.due_at).limit(500))
    now = utcnow()
    return [(r, r.status in OPEN_DELETION_STATUSES and r.due_at < now) for r in rows]


def member_requests(member: Member) -> list[DeletionRequest]:
    return list(
        db.session.scalars(
            select(DeletionRequest)
            .where(DeletionRequest.member_id == member.id)
            .order_by(DeletionRequest.received_at.desc())
        )
    )
