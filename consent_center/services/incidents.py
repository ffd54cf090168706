"""Security incident notices: staff tell members what happened, in every language, through
the same outbox fan-out as policy notices.

Incident notices are *essential*: the law requires telling the people whose data may be
affected, so they reach every matching member with an email address even if the member
turned policy-notice emails off, and carry no unsubscribe link. Text messages still follow
the member's SMS choice and any STOP opt-out (carrier rules). Members awaiting a guardian are
included: their data is held too.
"""

from __future__ import annotations

from datetime import date

from flask_babel import lazy_gettext as _l
from sqlalchemy import case, exists, func, select

from ..clock import utcnow
from ..domain import OPTIONAL_PURPOSES, Channel, Locale
from ..extensions import db
from ..models import ConsentState, FanOut, IncidentNotice, Member
from .audit import record_audit
from .errors import Conflict, Invalid, NotAllowed, NotFound
from .localtime import local_day_start
from .notifications import fan_out_condition, start_fan_out
from .usability import ESSENTIAL_NOTICE_STATUSES, usable_condition

KIND = "incident_notice"
# The parts of a notice, in the order members read them.
FIELDS = ("what_happened", "data_involved", "our_response", "member_actions", "contact")
FIELD_LABELS = {
    "what_happened": _l("What happened"),
    "data_involved": _l("Which information is involved"),
    "our_response": _l("What we are doing about it"),
    "member_actions": _l("What you can do"),
    "contact": _l("Whom to contact"),
}
MAX_FIELD_CHARS = 4000
AUDIENCE_STATUSES = ESSENTIAL_NOTICE_STATUSES


def _require_staff(actor: Member) -> None:
    if actor is None or not actor.is_staff:
        raise NotAllowed(_l("Only staff may send incident notices."))


def _date(value) -> date | None:
    if not value:
        return None
    return value if isinstance(value, date) else date.fromisoformat(value)


def audience_condition(audience: dict):
    """SQL over `Member` for the chosen recipients (None: everyone the fan-out reaches).

    :param audience: ``status``, ``registered_after`` and ``registered_before`` (dates, in
        the display time zone; "before" excludes that day) and ``purpose`` (members whose
        consent to it is usable now), each optional.
    """
    conditions = []
    if audience.get("status"):
        conditions.append(Member.status == audience["status"])
    if after := _date(audience.get("registered_after")):
        conditions.append(Member.created_at >= local_day_start(after))
    if before := _date(audience.get("registered_before")):
        conditions.append(Member.created_at < local_day_start(before))
    if audience.get("purpose"):
        conditions.append(
            exists(
                select(ConsentState.member_id)
                .where(ConsentState.member_id == Member.id, usable_condition(audience["purpose"]))
                .correlate(Member)
            )
        )
    if not conditions:
        return None
    condition = conditions[0]
    for more in conditions[1:]:
        condition = condition & more
    return condition


def recipient_counts(audience: dict) -> dict[str, int]:
    """How many members the notice would reach, and by which channel (one query)."""
    condition = Member.status.in_(ESSENTIAL_NOTICE_STATUSES)
    extra = audience_condition(audience)
    if extra is not None:
        condition = condition & extra
    email = fan_out_condition(Channel.EMAIL, essential=True)
    sms = fan_out_condition(Channel.SMS, essential=True)
    members, by_email, by_sms = db.session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((email, 1), else_=0)), 0),
            func.coalesce(func.sum(case((sms, 1), else_=0)), 0),
        ).where(condition)
    ).one()
    return {"members": int(members), "email": int(by_email), "sms": int(by_sms)}


def _check(content: dict, audience: dict) -> tuple[dict, dict]:
    errors: dict[str, list] = {}
    clean_content = {}
    for locale in Locale:
        texts = content.get(locale) or {}
        clean_content[str(locale)] = {}
        for name in FIELDS:
            value = (texts.get(name) or "").strip()
            key = f"{'zh' if locale == Locale.ZH else 'en'}_{name}"
            if not value:
                errors[key] = [_l("Write this part in this language too.")]
            elif len(value) > MAX_FIELD_CHARS:
                errors[key] = [_l("Use at most %(n)d characters.", n=MAX_FIELD_CHARS)]
            clean_content[str(locale)][name] = value
    status = audience.get("status") or None
    if status is not None and status not in AUDIENCE_STATUSES:
        errors["status"] = [_l("Choose one of the options.")]
    purpose = audience.get("purpose") or None
    if purpose is not None and purpose not in OPTIONAL_PURPOSES:
        errors["purpose"] = [_l("Choose one of the options.")]
    after = _date(audience.get("registered_after"))
    before = _date(audience.get("registered_before"))
    if after and before and before <= after:
        errors["registered_before"] = [_l("Choose a date after the “registered on or after” date.")]
    clean_audience = {
        "status": status,
        "registered_after": after.isoformat() if after else None,
        "registered_before": before.isoformat() if before else None,
        "purpose": purpose,
    }
    if errors:
        raise Invalid(_l("The notice cannot be saved."), errors)
    return clean_content, clean_audience


def save_incident(
    staff: Member, incident: IncidentNotice | None = None, *, content: dict, audience: dict
) -> IncidentNotice:
    """Create (``incident=None``) or change an unsent notice.

    :param content: ``{locale: {field: text}}`` for every locale and every field in `FIELDS`.
    :param audience: the recipient filter (see `audience_condition`).
    :raises NotAllowed: for a non-staff actor.
    :raises Conflict: when the notice was already sent.
    :raises Invalid: with field errors (``en_what_happened``, ``zh_contact``, ``status``...).
    """
    _require_staff(staff)
    if incident is not None and incident.sent_at is not None:
        raise Conflict(_l("This notice was already sent and cannot be changed."))
    clean_content, clean_audience = _check(content, audience)
    created = incident is None
    if created:
        incident = IncidentNotice(created_by_id=staff.id, created_at=utcnow())
        db.session.add(incident)
    incident.content = clean_content
    incident.audience = clean_audience
    incident.updated_at = utcnow()
    db.session.flush()
    record_audit(
        "incident.drafted" if created else "incident.updated",
        actor=staff,
        incident=incident.public_id,
        audience=clean_audience,
    )
    return incident


def load_incident(staff: Member, public_id: str) -> IncidentNotice:
    """:raises NotFound: for an unknown id. :raises NotAllowed: for a non-staff actor."""
    _require_staff(staff)
    incident = db.session.scalars(
        select(IncidentNotice).where(IncidentNotice.public_id == public_id)
    ).first()
    if incident is None:
        raise NotFound(_l("No such incident notice."))
    return incident


def load_unsent_incident(staff: Member, public_id: str) -> IncidentNotice:
    """A notice that may still change.

    :raises Conflict: when it was already sent (what went out never changes).
    """
    incident = load_incident(staff, public_id)
    if incident.sent_at is not None:
        raise Conflict(_l("This notice was already sent and cannot be changed."))
    return incident


def incident_notices() -> list[IncidentNotice]:
    """Every notice, newest first."""
    return list(
        db.session.scalars(select(IncidentNotice).order_by(IncidentNotice.created_at.desc()))
    )


def message_context(incident: IncidentNotice) -> dict:
    """What the email and SMS templates render: the text in every language (each message
    picks its reader's)."""
    return {"texts": incident.content, "incident_id": incident.public_id}


def send_incident(staff: Member, incident: IncidentNotice) -> FanOut:
    """Send the notice to its audience through the outbox (email, and SMS where chosen).

    The notice's row is locked first and the fan-out's cause is unique, so a double click
    sends it once.

    :returns: the fan-out, whose progress page staff watch next.
    :raises Conflict: when it was already sent.
    """
    _require_staff(staff)
    db.session.execute(
        select(IncidentNotice.id).where(IncidentNotice.id == incident.id).with_for_update()
    )
    db.session.refresh(incident)
    if incident.sent_at is not None:
        raise Conflict(_l("This notice was already sent."))
    fan = start_fan_out(
        kind=KIND,
        cause=f"{KIND}:{incident.public_id}",
        actor=staff,
        context=message_context(incident),
        audience=audience_condition(incident.audience),
        essential=True,
    )
    incident.sent_at = utcnow()
    incident.sent_by_id = staff.id
    incident.fan_out_id = fan.id
    record_audit(
        "incident.sent",
        actor=staff,
        incident=incident.public_id,
        fan_out=fan.public_id,
        total=fan.total,
        audience=incident.audience,
    )
    return fan
