"""What we hold about a member: the inventory view for /me and the full export."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from flask_babel import get_locale, gettext
from sqlalchemy import func, select

from ..domain import (
    DATA_INVENTORY,
    GENDER_LABELS,
    LOCALE_LABELS,
    MEMBER_STATUS_LABELS,
    PURPOSES,
    ROLE_LABELS,
    SOURCE_LABELS,
)
from ..extensions import db
from ..models import Member


@dataclass(frozen=True)
class FieldRow:
    column: str
    label: str
    value: object
    purposes: str  # the purposes' titles, joined for display
    source: str
    retention: str
    shared: str


@dataclass(frozen=True)
class GroupView:
    table: str
    title: str
    description: str
    count: int | None  # records held, for tables other than the profile
    fields: list[FieldRow]


# Row counts per member-data table: (table, the column that names the member).
_COUNTED = {
    "consent_event": "member_id",
    "notification": "member_id",
    "one_time_code": "member_id",
    "audit_event": "subject_member_id",
    "deletion_request": "member_id",
    "guardian_link": "minor_id",
    "change_event": "member_id",
}

# The inventory's text in each language, translated once per process: it is the same for
# every member, and translating ~300 lazy strings on every /me request was its largest cost.
_TEXT: dict[str, list[tuple[str, str, str, list[tuple[str, str, str, str, str, str]]]]] = {}


def _inventory_text() -> list[tuple[str, str, str, list[tuple[str, str, str, str, str, str]]]]:
    locale = str(get_locale() or "en")
    cached = _TEXT.get(locale)
    if cached is None:
        separator = gettext(", ")
        cached = [
            (
                g.table, str(g.title), str(g.description),
                [
                    (f.column, str(f.label),
                     separator.join(str(PURPOSES[p].title) for p in f.purposes),
                     str(SOURCE_LABELS[f.source]), str(f.retention), str(f.shared))
                    for f in g.fields
                ],
            )
            for g in DATA_INVENTORY
        ]
        _TEXT[locale] = cached
    return cached


def _display(member: Member, column: str) -> object:
    value = getattr(member, column)
    if column == "gender" and value:
        return GENDER_LABELS.get(value, value)
    if column == "locale":
        return LOCALE_LABELS.get(value, value)
    if column == "role":
        return ROLE_LABELS.get(value, value)
    if column == "status":
        return MEMBER_STATUS_LABELS.get(value, value)
    return value


def record_counts(member: Member) -> dict[str, int]:
    """How many rows each member-data table holds for this member, in one query."""
    tables = db.metadata.tables
    subqueries = [
        select(func.count())
        .select_from(tables[name])
        .where(tables[name].c[column] == member.id)
        .scalar_subquery()
        .label(name)
        for name, column in _COUNTED.items()
        if name in tables
    ]
    row = db.session.execute(select(*subqueries)).one()
    return dict(row._mapping)


def inventory_view(member: Member, consent_count: int | None = None) -> list[GroupView]:
    """Every inventory group with the member's values (profile) or record counts (others)."""
    counts = record_counts(member)
    groups = []
    for table, title, description, fields in _inventory_text():
        profile = table == "member"
        rows = [
            FieldRow(column, label, _display(member, column) if profile else None, purposes,
                     source, retention, shared)
            for column, label, purposes, source, retention, shared in fields
        ]
        count = consent_count if table == "consent_state" else counts.get(table)
        groups.append(GroupView(table, title, description, count, rows))
    return groups


def _json_value(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _row_dict(obj, columns: list[str]) -> dict:
    return {c: _json_value(getattr(obj, c)) for c in columns}


def export_member_data(member: Member) -> dict:
    """Everything held about the member, field by field, as plain JSON-able data.

    Generated from the data inventory, so every declared table and column is in it: internal
    row keys are left out; hashes of codes are shown as held, since they are held.
    """
    tables = db.metadata.tables
    owner = dict(_COUNTED, consent_state="member_id")
    export: dict = {"format": "consent-center-export/1"}
    for group in DATA_INVENTORY:
        columns = [f.column for f in group.fields]
        if group.table == "member":
            export["profile"] = _row_dict(member, columns)
            continue
        table = tables[group.table]
        order = list(table.primary_key.columns)
        rows = db.session.execute(
            select(*(table.c[c] for c in columns))
            .where(table.c[owner[group.table]] == member.id)
            .order_by(*order)
        ).all()
        export[group.table] = [
            {c: _json_value(v) for c, v in zip(columns, row, strict=True)} for row in rows
        ]
    return export
