"""The staff dashboard's figures.

Each figure is one set-wise query (GROUP BY in the database), so the dashboard costs the same
few queries for ten members or a million; Python only folds rows grouped by day (bounded by
the window's length, not by the number of members) into the consent series. The series is
computed in one place (`consent_series`), for the chart and for its CSV export alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import (
    Date,
    Integer,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    text,
    union_all,
)

from ..clock import utcnow
from ..domain import (
    OPEN_DELETION_STATUSES,
    OPTIONAL_PURPOSES,
    PURPOSES,
    MemberStatus,
)
from ..extensions import db
from ..models import (
    ConsentEvent,
    ConsentState,
    DeletionRequest,
    Member,
    Notification,
    PolicyVersion,
)
from ..models.types import UTCDateTime
from .localtime import display_zone, local_day_start, local_today
from .usability import usable_condition

SERIES_DAYS = 90
# The lengths of consent series staff may ask for, in days (the chart's ranges).
SERIES_RANGES = (7, 30, 90, 365)
NOTIFICATION_DAYS = 7
# Day index for "not within the window yet" (no end, or an end still in the future).
_NEVER = 1_000_000
_MEMBERS = "_members"


@dataclass(frozen=True)
class PurposeRate:
    """One optional purpose: consent now, and at the end of each day of the window."""

    purpose: str
    title: object
    usable: int  # members whose data may be used for it now (the usability rule)
    rate: float | None  # usable / current members; None without members
    series: list[float | None]  # share of members with a standing yes, per day

    @property
    def first(self) -> float | None:
        return next((v for v in self.series if v is not None), None)


@dataclass(frozen=True)
class ConsentSeries:
    """Per day of the window (display time zone), ending today: current members, and per
    optional purpose the share of them with a standing yes (None without members)."""

    days: list[date]
    members: list[int]
    rates: dict[str, list[float | None]]  # purpose -> one value per day


@dataclass(frozen=True)
class Dashboard:
    now: datetime
    members_by_status: dict[str, int]
    days: list[date]
    members_series: list[int]
    purposes: list[PurposeRate]
    notifications: dict[tuple[str, str], int]  # (channel, status) -> count, last 7 days
    open_deletions: int
    overdue_deletions: int

    @property
    def current_members(self) -> int:
        """Members not erased (active, or minors awaiting a guardian)."""
        return sum(n for s, n in self.members_by_status.items() if s != MemberStatus.ERASED)

    @property
    def notifications_total(self) -> int:
        return sum(self.notifications.values())


def _is_postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _day_index(column, start: datetime):
    """Whole days from `start` (a local midnight) to `column`, computed by the database."""
    if _is_postgres():
        # Local calendar dates subtract to an integer (and stay right across DST changes).
        zone = display_zone()
        local_date = cast(func.timezone(zone.key, column), Date)
        return cast(local_date - literal(start.astimezone(zone).date(), Date()), Integer)
    start_epoch = int(start.timestamp())
    return (cast(func.strftime("%s", column), Integer) - start_epoch) / 86400


def _bucket(column, start: datetime, now: datetime):
    """The window day of an instant: -1 before the window, _NEVER for none or the future."""
    return case(
        (column.is_(None), _NEVER),
        (column < start, -1),
        (column > now, _NEVER),
        else_=_day_index(column, start),
    )


def _no_jit() -> None:
    if _is_postgres():
        # These few aggregate queries are estimated "expensive" enough to be JIT-compiled,
        # which costs more than they take to run; for this transaction only.
        db.session.execute(text("SET LOCAL jit = off"))


def _least(*values):
    return func.least(*values) if _is_postgres() else func.min(*values)


def _stale_at(purpose, version_id, start_at, versions: list[PolicyVersion]):
    """SQL: when a yes given at `start_at` under `version_id` stops counting because a later
    version that changes its purpose takes effect (the member is asked again); NULL if never.

    The published versions are few, so the rule is spelled out as one CASE (cheaper than a
    subquery per row); the first match in effective-date order is the earliest.
    """
    whens = []
    for version in sorted(versions, key=lambda v: v.effective_at):
        older = [v.id for v in versions if v.number < version.number]
        granted_before = version_id.is_(None)
        if older:
            granted_before = or_(granted_before, version_id.in_(older))
        for key in version.changed_purpose_keys:
            whens.append(
                (
                    and_(purpose == key, start_at < version.effective_at, granted_before),
                    literal(version.effective_at, UTCDateTime()),
                )
            )
    return case(*whens, else_=null()) if whens else cast(null(), UTCDateTime())


def _series_rows(
    start: datetime, now: datetime, versions: list[PolicyVersion]
) -> list[tuple[str, int, int]]:
    """(purpose or _MEMBERS, window day, change) rows, from one query over the ledger.

    A yes counts from its event until the first of: the member's next event for that purpose
    (a withdrawal, or a new yes that starts its own span), a policy version taking effect
    that changes the purpose (the member is asked again), or the member's erasure. Members
    count from registration until erasure. The database groups the spans by (first day,
    last day), so what comes back is bounded by the window's days, not by members.
    """
    ev = ConsentEvent
    erased = select(Member.id, Member.erased_at).where(Member.erased_at.is_not(None)).subquery()
    spans = (
        select(
            ev.purpose.label("purpose"),
            ev.granted.label("granted"),
            ev.created_at.label("start_at"),
            func.lead(ev.created_at, type_=UTCDateTime())
            .over(partition_by=(ev.member_id, ev.purpose), order_by=ev.seq)
            .label("next_at"),
            _stale_at(ev.purpose, ev.policy_version_id, ev.created_at, versions).label("stale_at"),
            erased.c.erased_at.label("erased_at"),
        )
        .outerjoin(erased, erased.c.id == ev.member_id)
        .where(ev.purpose.in_(OPTIONAL_PURPOSES))
        .subquery("spans")
    )
    g = spans.c
    grants = (
        select(
            g.purpose.label("key"),
            _bucket(g.start_at, start, now).label("first"),
            _least(
                _bucket(g.next_at, start, now),
                _bucket(g.stale_at, start, now),
                _bucket(g.erased_at, start, now),
            ).label("last"),
        )
        .where(g.granted.is_(True))
        .subquery("grants")
    )
    members = select(
        literal(_MEMBERS).label("key"),
        _bucket(Member.created_at, start, now).label("first"),
        _bucket(Member.erased_at, start, now).label("last"),
    ).subquery("members")
    # Grouped in subqueries' columns: PostgreSQL would not match repeated bound expressions.
    query = union_all(
        *(
            select(q.c.key, q.c.first, q.c.last, func.count()).group_by(
                q.c.key, q.c.first, q.c.last
            )
            for q in (grants, members)
        )
    )
    rows = []
    for key, first, last, count in db.session.execute(query):
        rows.append((key, int(first), int(count)))
        rows.append((key, int(last), -int(count)))
    return rows


def _fold(rows, keys, days: int) -> dict[str, list[int]]:
    """Cumulative counts per key at the end of each window day."""
    base = dict.fromkeys(keys, 0)
    per_day = {k: [0] * days for k in keys}
    for key, day, total in rows:
        if key not in base or day >= _NEVER:
            continue
        if day < 0:
            base[key] += total
        elif day < days:
            per_day[key][day] += total
    out = {}
    for key in keys:
        running, values = base[key], []
        for change in per_day[key]:
            running += change
            values.append(running)
        out[key] = values
    return out


def consent_series(now: datetime | None = None, days: int = SERIES_DAYS) -> ConsentSeries:
    """The consent series of the last `days` days (display time zone), from one query over
    the ledger: the chart, its table and its CSV export all come from here.

    :param now: the moment the series ends (default: the clock).
    :param days: the window's length; staff choose one of `SERIES_RANGES`.
    """
    _no_jit()
    return _consent_series(now or utcnow(), days)


def _consent_series(now: datetime, days: int) -> ConsentSeries:
    first_day = local_today(now) - timedelta(days=days - 1)
    start = local_day_start(first_day)
    versions = list(
        db.session.scalars(select(PolicyVersion).where(PolicyVersion.published_at.is_not(None)))
    )
    folded = _fold(_series_rows(start, now, versions), (_MEMBERS, *OPTIONAL_PURPOSES), days)
    members = folded[_MEMBERS]
    rates = {
        key: [g / m if m else None for g, m in zip(folded[key], members, strict=True)]
        for key in OPTIONAL_PURPOSES
    }
    return ConsentSeries(
        days=[first_day + timedelta(days=i) for i in range(days)], members=members, rates=rates
    )


def dashboard(now: datetime | None = None, days: int = SERIES_DAYS) -> Dashboard:
    """Every figure of the staff dashboard, in seven queries whatever the number of members.

    :param now: the moment the figures describe (default: the clock).
    :param days: the length of the consent series, ending today (display time zone).
    """
    now = now or utcnow()
    _no_jit()
    by_status = {
        status: n
        for status, n in db.session.execute(
            select(Member.status, func.count()).group_by(Member.status)
        )
    }
    # One count per purpose (each an anti-join the planner runs well), in one statement.
    usable_now = (
        db.session.execute(
            select(
                *(
                    select(func.count())
                    .select_from(ConsentState)
                    .join(Member, Member.id == ConsentState.member_id)
                    .where(usable_condition(purpose, now))
                    .scalar_subquery()
                    .label(purpose)
                    for purpose in OPTIONAL_PURPOSES
                )
            )
        )
        .one()
        ._mapping
    )

    series = _consent_series(now, days)
    current = sum(n for s, n in by_status.items() if s != MemberStatus.ERASED)
    purposes = [
        PurposeRate(
            key,
            PURPOSES[key].title,
            int(usable_now[key] or 0),
            (usable_now[key] or 0) / current if current else None,
            series.rates[key],
        )
        for key in OPTIONAL_PURPOSES
    ]

    notifications = {
        (channel, status): n
        for channel, status, n in db.session.execute(
            select(Notification.channel, Notification.status, func.count())
            .where(Notification.created_at >= now - timedelta(days=NOTIFICATION_DAYS))
            .group_by(Notification.channel, Notification.status)
        )
    }
    open_count, overdue = db.session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((DeletionRequest.due_at < now, 1), else_=0)), 0),
        ).where(DeletionRequest.status.in_(OPEN_DELETION_STATUSES))
    ).one()
    return Dashboard(
        now=now,
        members_by_status=by_status,
        days=series.days,
        members_series=series.members,
        purposes=purposes,
        notifications=notifications,
        open_deletions=int(open_count),
        overdue_deletions=int(overdue),
    )
