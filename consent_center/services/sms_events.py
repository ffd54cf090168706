"""What Twilio tells us back: delivery status callbacks and inbound keywords (STOP, START,
HELP). Both may repeat and arrive out of order; handling is idempotent."""

from __future__ import annotations

from sqlalchemy import select

from ..clock import utcnow
from ..domain import MemberStatus, NotificationStatus
from ..extensions import db
from ..models import Member, Notification
from ..twilio_adapter import Failure, failure_of, message_status
from .audit import record_audit
from .members import record_sms_opt_out

STOP_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "退订", "TD"}
START_WORDS = {"START", "UNSTOP", "YES"}
HELP_WORDS = {"HELP", "INFO"}

# Later states never go back to earlier ones; the first final state wins.
_RANK = {
    NotificationStatus.PENDING: 0,
    NotificationStatus.SENDING: 1,
    NotificationStatus.SENT: 2,
    NotificationStatus.DELIVERED: 3,
    NotificationStatus.FAILED: 3,
    NotificationStatus.DEAD: 3,
}


def record_sms_status(message_sid: str, twilio_status: str, error_code: str | None) -> bool:
    """Apply a status callback to the message it is about; returns whether it changed.

    Unknown message ids are ignored (a message of an erased member, say).
    """
    status = message_status(twilio_status)
    if status is None or not message_sid:
        return False
    row = db.session.scalars(
        select(Notification).where(Notification.provider_id == message_sid).with_for_update()
    ).first()
    if row is None or _RANK[status] <= _RANK[NotificationStatus(row.status)]:
        return False
    row.status = status
    now = utcnow()
    if status == NotificationStatus.DELIVERED:
        row.delivered_at = now
    if status == NotificationStatus.FAILED:
        row.last_error = f"Twilio callback {twilio_status} {error_code or ''}".strip()
        opted_out = failure_of(None, error_code) == Failure.OPTED_OUT
        if opted_out and row.member_id is not None:
            record_sms_opt_out(row.member_id, source="provider")
    return True


def _members_with_phone(phone: str) -> list[Member]:
    return list(
        db.session.scalars(
            select(Member).where(Member.phone == phone, Member.status != MemberStatus.ERASED)
        )
    )


def handle_inbound_sms(from_number: str, body: str, opt_out_type: str | None) -> str | None:
    """React to a keyword texted to us; returns the reply to send back, if any."""
    # Twilio names the keyword it recognised; otherwise take the first word of the text.
    words = (body or "").strip().split(maxsplit=1)
    word = (opt_out_type or (words[0] if words else "")).strip().upper()
    members = _members_with_phone(from_number)
    if word in STOP_WORDS:
        for member in members:
            record_sms_opt_out(member.id, source="sms_keyword")
        return None
    if word in START_WORDS:
        for member in members:
            if member.sms_opted_out_at is not None:
                member.sms_opted_out_at = None
                record_audit(
                    "notify.sms_opted_in", actor=member, subject=member, source="sms_keyword"
                )
        return None
    if word in HELP_WORDS:
        return "help"
    return None
