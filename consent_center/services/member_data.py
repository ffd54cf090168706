"""What we hold about a member: the inventory view for /me and the full export."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select

from ..domain import DATA_INVENTORY, GENDER_LABELS, LOCALE_LABELS, PURPOSES, SOURCE_LABELS
from ..extensions import db
from ..models import AuditEvent, ConsentEvent, Member, Notification, OneTimeCode


@dataclass(frozen=True)
class FieldRow:
    column: str
    label: object
    value: object
    purposes: list
    source: object
    retention: object
    shared: object


@dataclass(frozen=True)
class GroupView:
    table: str
    title: object
    description: object
    count: int | None  # records held, for tables other than the profile
    fields: list[FieldRow]


_COUNTED = {
    "consent_event": (ConsentEvent, ConsentEvent.member_id),
    "notification": (Notification, Notification.member_id),
    "one_time_code": (OneTimeCode, OneTimeCode.member_id),
    "audit_event": (AuditEvent, AuditEvent.subject_member_id),
}


def _display(member: Member, column: str) -> object:
    value = getattr(member, column)
    if column == "gender" and value:
        return GENDER_LABELS.get(value, value)
    if column == "locale":
        return LOCALE_LABELS.get(value, value)
    return value


def record_counts(member: Member) -> dict[str, int]:
    """How many rows each member-data table holds for this member, in one query."""
    subqueries = [
        select(func.count()).select_from(model).where(col == member.id).scalar_subquery().label(t)
        for t, (model, col) in _COUNTED.items()
    ]
    row = db.session.execute(select(*subqueries)).one()
    return dict(row._mapping)


def inventory_view(member: Member, consent_count: int | None = None) -> list[GroupView]:
    """Every inventory group with the member's values (profile) or record counts (others)."""
    counts = record_counts(member)
    groups = []
    for group in DATA_INVENTORY:
        rows = []
        for f in group.fields:
            value = _display(member, f.column) if group.table == "member" else None
            rows.append(
                FieldRow(
                    f.column,
                    f.label,
                    value,
                    [PURPOSES[p].title for p in f.purposes],
                    SOURCE_LABELS[f.source],
                    f.retention,
                    f.shared,
                )
            )
        count = None
        if group.table == "consent_state":
            count = consent_count
        elif group.table in counts:
            count = counts[group.table]
        groups.append(GroupView(group.table, group.title, group.description, count, rows))
    return groups


def _json_value(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _row_dict(obj, columns: list[str]) -> dict:
    return {c: _json_value(getattr(obj, c)) for c in columns}


def export_member_data(member: Member) -> dict:
    """Everything held about the member, field by field, as plain JSON-able data.

    Internal row keys are left out; every inventory column is included (hashes of codes are
    shown as held, since they are held).
    """
    by_table = {g.table: [f.column for f in g.fields] for g in DATA_INVENTORY}
    from ..models import ConsentState

    def rows(model, col, order):
        return list(db.session.scalars(select(model).where(col == member.id).order_by(order)))

    return {
        "format": "consent-center-export/1",
        "profile": _row_dict(member, by_table["member"]),
        "consent_state": [
            _row_dict(s, by_table["consent_state"])
            for s in rows(ConsentState, ConsentState.member_id, ConsentState.purpose)
        ],
        "consent_event": [
            _row_dict(e, by_table["consent_event"])
            for e in rows(ConsentEvent, ConsentEvent.member_id, ConsentEvent.seq)
        ],
        "notification": [
            _row_dict(n, by_table["notification"])
            for n in rows(Notification, Notification.member_id, Notification.id)
        ],
        "one_time_code": [
            _row_dict(c, by_table["one_time_code"])
            for c in rows(OneTimeCode, OneTimeCode.member_id, OneTimeCode.id)
        ],
        "audit_event": [
            _row_dict(a, by_table["audit_event"])
            for a in rows(AuditEvent, AuditEvent.subject_member_id, AuditEvent.id)
        ],
    }
