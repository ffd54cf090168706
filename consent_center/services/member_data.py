"""What we hold about a member: the inventory view for /me and the full export."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache

from flask_babel import get_locale, gettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, func, literal, or_, select
from sqlalchemy.orm import aliased

from ..clock import utcnow
from ..domain import (
    OPEN_DELETION_STATUSES,
    PURPOSES,
    SOURCE_LABELS,
    Locale,
)
from ..domain.text import translator
from ..extensions import db
from ..models import (
    DATA_INVENTORY,
    HELD_TABLES,
    ConsentEvent,
    ConsentState,
    DeletionRequest,
    Member,
    PolicyVersion,
)
from ..models.policy import PolicyText, for_reader
from ..models.types import UTCDateTime
from . import sql
from .audit import record_audit
from .consents import ConsentView, consent_columns, consent_views
from .errors import Invalid, NotFound
from .policies import in_force, notice_due_condition


@dataclass(frozen=True)
class FieldRow:
    column: str
    label: str
    value: object
    purposes: str  # the purposes' titles, joined for display
    source: str
    retention: str
    recipients: str


@dataclass(frozen=True)
class GroupView:
    table: str
    title: str
    description: str
    count: int | None  # records held, for tables other than the profile
    fields: list[FieldRow]  # all of a group shown on its own; only the profile's in an overview


# Row counts per member-data table: (table, the column that names the member). The profile
# is the member's own row, and /me counts current consents from the consents it shows.
_COUNTED = {
    g.table: g.owner for g in DATA_INVENTORY if g.table not in ("member", "consent_state")
}

def _inventory_groups(groups=DATA_INVENTORY, fields_of=None, member: Member | None = None,
                      counts: dict[str, int | None] | None = None) -> list[GroupView]:
    """Inventory groups in the reader's language, each with its fields if `fields_of`
    (default: all) names its table, the profile's fields with `member`'s values, and each
    group's record count from `counts`. Many fields share a text (a source, a recipient, a
    retention rule, the purposes' titles): each text is translated once per call, all
    through one catalogue lookup."""
    translate = translator()
    texts: dict[int, str] = {}

    def text(value) -> str:
        found = texts.get(id(value))
        if found is None:
            found = texts[id(value)] = translate(value)
        return found

    separator = gettext(", ")
    counts = counts or {}

    def value(table: str, column: str) -> object:
        return _display(member, column) if member is not None and table == "member" else None

    return [
        GroupView(
            g.table, text(g.title), text(g.description), counts.get(g.table),
            [
                FieldRow(f.column, text(f.label), value(g.table, f.column),
                         separator.join(text(PURPOSES[p].title) for p in f.purposes),
                         text(SOURCE_LABELS[f.source]), text(f.retention), text(f.recipients))
                for f in g.fields
            ] if fields_of is None or g.table in fields_of else [],
        )
        for g in groups
    ]


def _display(member: Member, column: str) -> object:
    """A profile value as /me shows it: by its label where the column names one."""
    value = getattr(member, column)
    labels = _PROFILE_LABELS.get(column)
    return labels.get(value, value) if labels and value is not None else value


# The labels each profile column's values are shown by (models/member.py `labels=`).
_PROFILE_LABELS = {f.column: f.labels for f in HELD_TABLES["member"].fields if f.labels}


def _count_columns(member_id):
    """One scalar subquery per member-data table: how many rows it holds for the member."""
    tables = db.metadata.tables
    return [
        select(func.count())
        .select_from(tables[name])
        .where(tables[name].c[column] == member_id)
        .scalar_subquery()
        .label(name)
        for name, column in _COUNTED.items()
        if name in tables
    ]


def record_counts(member: Member) -> dict[str, int]:
    """How many rows each member-data table holds for this member, in one query."""
    row = db.session.execute(select(*_count_columns(member.id))).one()
    return dict(row._mapping)


def inventory_view(member: Member, consent_count: int | None = None,
                   counts: dict[str, int] | None = None) -> list[GroupView]:
    """Every inventory group: the profile's fields with the member's values, the others'
    record counts (their fields are one `inventory_group` each).

    :param counts: the record counts, when the caller has them (else one query).
    """
    if counts is None:
        counts = record_counts(member)
    return _inventory_groups(
        fields_of=("member",), member=member, counts={**counts, "consent_state": consent_count}
    )


def inventory_group(member: Member, table: str) -> GroupView:
    """One inventory group, every field with why we hold it (the profile's with the
    member's values): the part of /me a member opens. Counts are /me's.

    :raises NotFound: for a table that holds no member data.
    """
    if table not in HELD_TABLES:
        raise NotFound(_l("We hold no such part of your data."))
    (group,) = _inventory_groups((HELD_TABLES[table],), member=member)
    return group


@dataclass(frozen=True)
class PolicyNotice:
    """A published policy version the member has not acknowledged yet."""

    number: int
    effective_at: datetime
    summary: PolicyText  # in the member's language; `.summary` and `.lang`
    changed_purpose_keys: tuple[str, ...]


@dataclass(frozen=True)
class OpenDeletion:
    """The member's open deletion request, as /me shows it."""

    public_id: str
    status: str
    due_at: datetime


@dataclass(frozen=True)
class MemberOverview:
    """Everything the member's own page shows."""

    consents: list[ConsentView]
    groups: list[GroupView]
    policy_effective_at: datetime | None  # when the version in force took effect
    notice: PolicyNotice | None  # the newest published version not yet acknowledged
    open_deletion: OpenDeletion | None  # shown instead of a second "delete my data"


@cache
def _overview_statement():
    # Built once (its construction costs more than running it): the member's consent rows,
    # outer-joined to a single row so that a member without any still gets one row, with
    # the pending notice's version joined to it, and every record count and the date of
    # the version in force as scalar subqueries.
    member_id = bindparam("member_id")
    now = bindparam("now", type_=UTCDateTime())
    effective_at = (
        in_force(now, PolicyVersion.effective_at).scalar_subquery().label("policy_effective_at")
    )
    newest_unseen = (
        select(func.max(PolicyVersion.number))
        .where(
            notice_due_condition(
                bindparam("seen"), bindparam("registered", type_=UTCDateTime())
            )
        )
        .scalar_subquery()
    )
    notice = aliased(PolicyVersion, name="notice")
    # At most one request is open at a time (deletion.request_deletion), so this join never
    # multiplies the consent rows.
    deletion = aliased(DeletionRequest, name="open_deletion")
    one = select(literal(1).label("one")).subquery("one")
    return (
        select(
            *consent_columns(now),
            effective_at,
            notice.number.label("notice_number"),
            notice.effective_at.label("notice_effective_at"),
            notice.summary.label("notice_summary"),
            notice.summary_zh.label("notice_summary_zh"),
            notice.changed_purposes.label("notice_changed_purposes"),
            deletion.public_id.label("deletion_public_id"),
            deletion.status.label("deletion_status"),
            deletion.due_at.label("deletion_due_at"),
            *_count_columns(member_id),
        )
        .select_from(one)
        .outerjoin(notice, notice.number == newest_unseen)
        .outerjoin(
            deletion,
            # Spelled out: fetch_all prepares the statement once, so no expanding IN.
            (deletion.member_id == member_id)
            & or_(*(deletion.status == literal(s) for s in OPEN_DELETION_STATUSES)),
        )
        .outerjoin(ConsentState, ConsentState.member_id == member_id)
        .outerjoin(ConsentEvent, ConsentEvent.id == ConsentState.event_id)
    )


def member_overview(member: Member) -> MemberOverview:
    """What /me shows: consents, the inventory with values and counts, the policy in force
    and any pending notice. One query."""
    rows = sql.connection().execute(
        _overview_statement(),
        {
            "member_id": member.id,
            "now": utcnow(),
            "seen": member.policy_seen_number,
            "registered": member.created_at,
        },
    ).all()
    first = rows[0]
    consents = consent_views(member, rows)
    counts = {name: getattr(first, name) for name in _COUNTED}
    notice = None
    if first.notice_number is not None:
        notice = PolicyNotice(
            first.notice_number,
            first.notice_effective_at,
            # The member's pages are in their language (`web.i18n.select_locale`).
            for_reader(
                member.locale,
                {
                    Locale.EN: PolicyText(Locale.EN, summary=first.notice_summary),
                    Locale.ZH: PolicyText(Locale.ZH, summary=first.notice_summary_zh),
                },
            ),
            tuple(p for p in first.notice_changed_purposes.split(",") if p),
        )
    return MemberOverview(
        consents=consents,
        groups=inventory_view(member, consent_count=len(consents), counts=counts),
        policy_effective_at=first.policy_effective_at,
        notice=notice,
        open_deletion=OpenDeletion(
            first.deletion_public_id, first.deletion_status, first.deletion_due_at
        )
        if first.deletion_public_id is not None
        else None,
    )


def _json_value(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


# The export's format: its schema is static/export-schema.json, documented in
# docs/export-schema.md. Change all three together (and the number when a consumer would break).
EXPORT_FORMAT = "consent-center-export/2"
EXPORT_FORMATS = ("json", "csv")
# The CSV's columns: one row per field value, each with what the inventory says of the field.
CSV_COLUMNS = (
    "table", "record", "column", "label", "value", "purposes", "source", "recipients",
    "retention",
)


def _field_description(group, field) -> dict:
    return {
        "table": group.table,
        "column": field.column,
        "label": str(field.label),
        "purposes": [{"key": p, "title": str(PURPOSES[p].title)} for p in field.purposes],
        "source": {"key": field.source, "label": str(SOURCE_LABELS[field.source])},
        "recipients": str(field.recipients),
        "retention": str(field.retention),
    }


def _member_records(member: Member) -> dict[str, list[dict]]:
    """Every row about the member in each inventory table, with exactly the inventory's
    columns (internal row keys are left out; hashes of codes are shown as held)."""
    tables = db.metadata.tables
    records: dict[str, list[dict]] = {}
    for group in DATA_INVENTORY:
        columns = [f.column for f in group.fields]
        if group.table == "member":
            records["member"] = [{c: _json_value(getattr(member, c)) for c in columns}]
            continue
        table = tables[group.table]
        rows = db.session.execute(
            select(*(table.c[c] for c in columns))
            .where(table.c[group.owner] == member.id)
            .order_by(*table.primary_key.columns)
        ).all()
        records[group.table] = [
            {c: _json_value(v) for c, v in zip(columns, row, strict=True)} for row in rows
        ]
    return records


def export_member_data(member: Member, *, actor: Member, file_format: str = "json") -> dict:
    """Everything held about the member: every inventory field with its purposes, source,
    recipients and retention (in the current language), and every row about the member.

    Records the export in the member's audit chain (who took a copy, in which format); the
    caller has confirmed the actor with a fresh code and commits.

    :param actor: the member, or the guardian exporting a ward's data.
    :raises Invalid: for a format other than those in `EXPORT_FORMATS`.
    """
    if file_format not in EXPORT_FORMATS:
        raise Invalid(_l("Choose JSON or CSV."))
    record_audit("member.data_exported", actor=actor, subject=member, format=file_format)
    return {
        "format": EXPORT_FORMAT,
        "exported_at": utcnow().isoformat(),
        "language": str(get_locale() or "en"),
        "member": member.public_id,
        "fields": [_field_description(g, f) for g in DATA_INVENTORY for f in g.fields],
        "records": _member_records(member),
    }


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def export_csv(data: dict) -> str:
    """The export as CSV: one row per field value, carrying the field's inventory entry."""
    fields = {(f["table"], f["column"]): f for f in data["fields"]}
    separator = gettext(", ")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for table, rows in data["records"].items():
        for number, row in enumerate(rows, start=1):
            for column, value in row.items():
                field = fields[(table, column)]
                writer.writerow((
                    table, number, column, field["label"], _csv_cell(value),
                    separator.join(p["title"] for p in field["purposes"]),
                    field["source"]["label"], field["recipients"], field["retention"],
                ))
    return out.getvalue()
