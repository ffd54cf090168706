"""What downstream systems read through the API: one member's consents, the audience usable
for a purpose, and the change feed. Every answer comes from the database at the moment of
the request (no cache), through the one usability rule in `services.usability`.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    BindParameter,
    Row,
    Select,
    String,
    and_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy.sql.visitors import replacement_traverse

from ..clock import utcnow
from ..domain import OPTIONAL_PURPOSES, MemberStatus
from ..extensions import db
from ..models import ApiToken, ChangeEvent, ConsentEvent, ConsentState, Member, PolicyVersion
from . import sql
from .api_tokens import AuthenticatedToken, hash_token, is_token, parse_stored_scopes
from .audit import lock_member
from .errors import Invalid, NotFound
from .usability import minor_cutoff, stale_grant_condition, usable_condition

log = logging.getLogger("consent_center.api")

GRANTED = "granted"
WITHDRAWN = "withdrawn"
NOT_GIVEN = "not_given"


class BadQuery(Invalid):
    """A malformed query parameter or cursor: 400, not 422."""

    status = 400


# --- One member's consents ---------------------------------------------------------------


@dataclass(frozen=True)
class PurposeConsent:
    purpose: str
    state: str  # granted, withdrawn or not_given
    policy_version: int | None
    changed_at: datetime | None
    usable_now: bool
    needs_reconsent: bool


@dataclass(frozen=True)
class ConsentsAnswer:
    """What one query found for the API's consents endpoint."""

    token: AuthenticatedToken | None  # None: unknown or revoked
    found: list[PurposeConsent] | None  # None: no such member, or not asked (no token)

    def consents(self) -> list[PurposeConsent]:
        """The member's consents, once the token is admitted.

        :raises NotFound: for an unknown or erased member (a tombstone id included), alike.
        """
        if self.found is None:
            raise NotFound(_l("No such member."))
        return self.found


def read_member_consents(token: str, public_id: str, now: datetime | None = None) -> ConsentsAnswer:
    """Look up an API token and a member's consents (each optional purpose's current
    answer and whether it is usable now) in one query: the API's hottest path, one round
    trip to the database (the read pool's, in a read-only request). The caller admits the
    token before it reads `consents()`.
    """
    if not is_token(token):
        return ConsentsAnswer(None, None)
    now = now or utcnow()
    params = {
        "token_hash": hash_token(token),
        "public_id": public_id,
        "now": now,
        "cutoff": minor_cutoff(now.date(), _member_consents_key()[0]),
    }
    rows = sql.connection().execute(token_and_consents_statement(), params).all()
    return _consents_answer(rows)


def _consents_answer(rows: Sequence) -> ConsentsAnswer:
    """The token and the member's consents from the rows of `token_and_consents_statement()`."""
    if not rows:
        return ConsentsAnswer(None, None)
    first = rows[0]
    found = AuthenticatedToken(
        first.token_id, parse_stored_scopes(first.scopes), first.last_used_at
    )
    if first.member_id is None:
        return ConsentsAnswer(found, None)
    by_purpose = {r.purpose: r for r in rows if r.purpose is not None}
    answers = []
    for purpose in OPTIONAL_PURPOSES:
        row = by_purpose.get(purpose)
        if row is None:
            answers.append(PurposeConsent(purpose, NOT_GIVEN, None, None, False, False))
            continue
        answers.append(
            PurposeConsent(
                purpose,
                GRANTED if row.granted else WITHDRAWN,
                row.number,
                row.updated_at,
                bool(row.usable),
                bool(row.stale),
            )
        )
    return ConsentsAnswer(found, answers)


# Stand-in times, replaced by the named parameters `now` and `cutoff` once the statement is
# built: the rule's SQL is built once per process and configuration, and every execution
# binds the moment of the request, so nothing is answered from a cache.
_STAND_IN_NOW = datetime(1900, 1, 1, tzinfo=UTC)
_statements: dict[tuple, Select] = {}


def _member_consents_key() -> tuple:
    config = current_app.config
    return config["MINOR_AGE"], config["MINORS_ADVERTISING"]


def _member_consents_statement() -> Select:
    key = ("member_consents", *_member_consents_key())
    statement = _statements.get(key)
    if statement is None:
        now = _STAND_IN_NOW
        usable = or_(*(usable_condition(p, now) for p in OPTIONAL_PURPOSES))
        statement = (
            select(
                Member.id.label("member_id"),
                ConsentState.purpose,
                ConsentState.granted,
                ConsentState.updated_at,
                PolicyVersion.number,
                usable.label("usable"),
                and_(ConsentState.granted.is_(True), stale_grant_condition(now)).label("stale"),
            )
            .select_from(Member)
            .outerjoin(ConsentState, ConsentState.member_id == Member.id)
            .outerjoin(PolicyVersion, PolicyVersion.id == ConsentState.policy_version_id)
            .where(
                Member.public_id == bindparam("public_id"),
                Member.status != MemberStatus.ERASED,
            )
        )
        statement = _bind_the_moment(statement, minor_cutoff(now.date()))
        _statements[key] = statement
    return statement


def token_and_consents_statement() -> Select:
    """The live token with this hash, beside the member's consents (a row of NULLs for an
    unknown member); no row for an unknown or revoked token. Built once per process and
    configuration (`MINOR_AGE`, `MINORS_ADVERTISING`)."""
    key = ("token_and_consents", *_member_consents_key())
    statement = _statements.get(key)
    if statement is None:
        consents = _member_consents_statement().subquery("consents")
        statement = (
            select(
                ApiToken.id.label("token_id"),
                ApiToken.scopes,
                ApiToken.last_used_at,
                *consents.c,
            )
            .outerjoin(consents, true())
            .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None))
        )
        _statements[key] = statement
    return statement


def _bind_the_moment(statement: Select, cutoff: date) -> Select:
    """Replace the stand-in time and minor cut-off with the parameters `now` and `cutoff`,
    and write the rule's constants (statuses, purposes, patterns) into the SQL: an execution
    then sends only what changes per request (the token, the member, the moment)."""

    def replace(element):
        if isinstance(element, BindParameter):
            if element.value == _STAND_IN_NOW:
                return bindparam("now", type_=element.type)
            if element.value == cutoff:
                return bindparam("cutoff", type_=element.type)
            return _sql_literal(element)
        return None

    return replacement_traverse(statement, {}, replace)


def _sql_literal(bind: BindParameter):
    """A constant text or whole number as an SQL literal (standard SQL, every dialect);
    anything else stays a parameter."""
    value = bind.value
    if isinstance(value, str):
        return literal_column("'" + str.replace(value, "'", "''") + "'", bind.type)
    if isinstance(value, int) and not isinstance(value, bool):
        return literal_column(str(int(value)), bind.type)
    return None


# --- Audiences ---------------------------------------------------------------------------

MAX_PAGE = 10_000


def check_purpose(purpose: str) -> str:
    """:raises NotFound: unless `purpose` is an optional purpose."""
    if purpose not in OPTIONAL_PURPOSES:
        raise NotFound(_l("No such purpose."))
    return purpose


def audience_query(purpose: str, *, after: str | None = None, limit: int | None = None, now=None):
    """SQL: (member public id, since) of every member usable for `purpose` now, ordered by
    public id (the keyset: `after` is the last public id of the previous page)."""
    query = (
        select(Member.public_id, _iso_text(ConsentState.updated_at).label("since"))
        .select_from(Member)
        .join(ConsentState, ConsentState.member_id == Member.id)
        .where(usable_condition(check_purpose(purpose), now or utcnow()))
        .order_by(Member.public_id)
    )
    if after:
        query = query.where(Member.public_id > after)
    if limit:
        query = query.limit(limit)
    return query


def _iso_text(column):
    """SQL: a UTC time column as the text `iso()` makes (microseconds and a Z), formatted by
    the database: a million rows then need no datetime objects in Python."""
    if db.engine.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    # SQLite holds UTC times as 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's storage format).
    return func.replace(type_coerce(column, String), " ", "T").concat("Z")


def audience_page(purpose: str, *, after: str | None, limit: int) -> tuple[list[Row], str | None]:
    """One page of at most `limit` rows (bounded by MAX_PAGE), and the `after` value of the
    next page (None on the last page)."""
    rows = db.session.execute(audience_query(purpose, after=after, limit=limit + 1)).all()
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].public_id
    return rows, None


def stream_audience(
    purpose: str, *, after: str | None = None, batch: int = 5000
) -> Iterator[Sequence[Row]]:
    """Every row of the audience, in batches, through a server-side cursor: memory stays flat
    however large the audience is.

    The rows are read on a connection of their own, opened when the first batch is wanted and
    closed after the last: a streamed body is sent after Flask has torn down the request's
    session, so the cursor cannot live in it.

    :raises NotFound: at once, for a purpose that is not optional.
    """
    query = audience_query(purpose, after=after)
    engine = db.engine

    def batches() -> Iterator[Sequence[Row]]:
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                # Plan for every row, not the first 10% (the default for cursors): a sort
                # and hash join instead of a million index probes, 4x faster overall.
                connection.exec_driver_sql("SET LOCAL cursor_tuple_fraction = 1.0")
            result = connection.execution_options(stream_results=True, yield_per=batch).execute(
                query
            )
            yield from result.partitions()
            connection.commit()  # read-only; a ROLLBACK would drop psycopg's prepared statements

    return batches()


# --- The change feed ---------------------------------------------------------------------
# The feed is the consent ledger itself (every consent_event row, in id order) merged with
# the erasure notices (change_event rows), which the ledger cannot carry: an erased member's
# chain names only a tombstone. Each notice is listed after the member's last ledger event
# (`after_event_id`), so a reader learns of a member's changes before their erasure. The
# notices are read before the ledger: a notice that is visible was committed after the
# member's events (erasure holds the member's row lock), so those are visible too.

CONSENT_CHANGED = "consent.changed"
MEMBER_ERASED = "member.erased"
EVENT_TYPES = (CONSENT_CHANGED, MEMBER_ERASED)


def iso(value: datetime | None) -> str | None:
    """A UTC time as ISO 8601 with microseconds and a `Z`, as every API document shows it."""
    if value is None:
        return None
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


def event_document(
    *,
    event_id: str,
    event_type: str,
    created_at: datetime,
    member_id: str | None,
    purpose: str | None = None,
    granted: bool | None = None,
    policy_version: int | None = None,
    actor: str | None = None,
    method: str | None = None,
) -> dict:
    """One event as the change feed lists it and a webhook delivers it (the same shape)."""
    document: dict = {
        "id": event_id,
        "type": event_type,
        "created_at": iso(created_at),
        "member_id": member_id,
    }
    if event_type == CONSENT_CHANGED:
        document["consent"] = {
            "purpose": purpose,
            "granted": granted,
            "policy_version": policy_version,
            "actor": actor,
            "method": method,
        }
    return document


def erasure_notice_cutoff(now: datetime | None = None) -> datetime:
    """Erasure notices older than this no longer name the former member number."""
    days = current_app.config["API_ERASURE_NOTICE_DAYS"]
    return (now or utcnow()) - timedelta(days=days)


def forget_expired_erasure_notices(now: datetime | None = None) -> int:
    """Clear the former member number from erasure notices past their notice period (no
    commit). Runs with every erasure and daily (`flask retention run`); the feed hides
    expired ones in any case.

    :returns: how many notices were cleared.
    """
    return db.session.execute(
        update(ChangeEvent)
        .where(
            ChangeEvent.former_public_id.is_not(None),
            ChangeEvent.created_at < erasure_notice_cutoff(now),
        )
        .values(former_public_id=None)
        .execution_options(synchronize_session=False)
    ).rowcount



def announce_erasure(member: Member) -> ChangeEvent:
    """Write the erasure notice of `member` for the feed and webhooks (no commit). Call it
    in the erasure's transaction before the member's public id is replaced: the notice names
    the member as downstream systems knew them. Expired notices are forgotten on the way.
    """
    now = utcnow()
    lock_member(member.id)  # no ledger event of theirs commits after the notice's place
    forget_expired_erasure_notices(now)
    after = db.session.scalar(
        select(func.coalesce(func.max(ConsentEvent.id), 0)).where(
            ConsentEvent.member_id == member.id
        )
    )
    notice = ChangeEvent(
        type=MEMBER_ERASED,
        member_id=member.id,
        after_event_id=after,
        former_public_id=member.public_id,
        created_at=now,
    )
    db.session.add(notice)
    db.session.flush()
    return notice


MAX_HOLES = 64
CURSOR_VERSION = 2
LEDGER, NOTICES = "ledger", "notices"


@dataclass(frozen=True)
class StreamCursor:
    """Where a reader is in one stream of the feed: every row up to `position` was handed
    out, except the ids in `holes` (first id, last id, unix time first seen missing), which
    were not yet committed when the reader passed them (PostgreSQL hands out ids at insert,
    not at commit). Holes are looked at again on each read until they appear or
    `API_FEED_HOLE_SECONDS` pass (then they were rolled back)."""

    position: int = 0
    holes: tuple[tuple[int, int, int], ...] = ()


@dataclass(frozen=True)
class FeedCursor:
    """Where a reader is in the feed: in the ledger, and in the erasure notices."""

    ledger: StreamCursor = StreamCursor()
    notices: StreamCursor = StreamCursor()


def encode_cursor(cursor: FeedCursor) -> str:
    """The cursor as an opaque URL-safe string."""
    data = [CURSOR_VERSION]
    for stream in (cursor.ledger, cursor.notices):
        data += [stream.position, [list(h) for h in stream.holes]]
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _stream(position, holes) -> StreamCursor:
    holes = tuple((int(a), int(b), int(t)) for a, b, t in holes)
    if (
        not isinstance(position, int)
        or isinstance(position, bool)
        or not 0 <= position < 2**63
        or len(holes) > MAX_HOLES
        or any(not 0 < a <= b <= position or t < 0 for a, b, t in holes)
    ):
        raise ValueError("not a stream position")
    return StreamCursor(position, holes)


def decode_cursor(value: str | None) -> FeedCursor:
    """Read a cursor from `encode_cursor` (None: the start of the feed).

    :raises BadQuery: for anything else, an empty string included.
    """
    if value is None:
        return FeedCursor()
    problem = BadQuery(_l("The cursor is not one this API gave out."))
    if len(value) > 8192:
        raise problem
    try:
        data = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        version, ledger, ledger_holes, notices, notice_holes = data
        if version != CURSOR_VERSION:
            raise ValueError("another version")
        return FeedCursor(_stream(ledger, ledger_holes), _stream(notices, notice_holes))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise problem from None


def feed_end() -> FeedCursor:
    """A cursor after every event committed so far (where a new webhook subscription starts)."""
    ledger, notices = db.session.execute(
        select(
            select(func.coalesce(func.max(ConsentEvent.id), 0)).scalar_subquery(),
            select(func.coalesce(func.max(ChangeEvent.id), 0)).scalar_subquery(),
        )
    ).one()
    return FeedCursor(StreamCursor(ledger), StreamCursor(notices))


def _without(first: int, last: int, ids: Sequence[int]) -> list[tuple[int, int]]:
    """The range [first, last] minus the sorted `ids`, as ranges."""
    ranges, start = [], first
    for i in ids[bisect_left(ids, first) : bisect_right(ids, last)]:
        if i > start:
            ranges.append((start, i - 1))
        start = i + 1
    if start <= last:
        ranges.append((start, last))
    return ranges


def advance_cursor(cursor: StreamCursor, seen: Sequence[int], now: datetime) -> StreamCursor:
    """The stream's cursor after handing out the rows with ids `seen` (sorted): ids passed
    over become holes; holes older than API_FEED_HOLE_SECONDS are dropped."""
    stamp = int(now.timestamp())
    position = max(cursor.position, seen[-1]) if seen else cursor.position
    pending = list(cursor.holes)
    if position > cursor.position:
        pending.append((cursor.position + 1, position, stamp))
    ttl = current_app.config["API_FEED_HOLE_SECONDS"]
    holes = [
        (a, b, first_seen)
        for first, last, first_seen in pending
        if stamp - first_seen < ttl
        for a, b in _without(first, last, seen)
    ]
    if len(holes) > MAX_HOLES:
        log.warning("change feed cursor: %d gaps, keeping the newest %d", len(holes), MAX_HOLES)
        holes = sorted(holes, key=lambda h: (h[2], h[0]))[-MAX_HOLES:]
    return StreamCursor(position, tuple(sorted(holes)))


@dataclass(frozen=True)
class FeedPage:
    """Events in feed order; `streams` says which stream and row id each came from, so
    `cursor_after(n)` is the cursor once the first n were handed out."""

    items: list[dict]
    start: FeedCursor
    streams: list[tuple[str, int]]
    has_more: bool
    now: datetime
    # The request that wrote each item (`observability`), for its webhook delivery's
    # X-Request-Id; not part of the document.
    request_ids: list[str | None] = field(default_factory=list)

    def cursor_after(self, count: int) -> FeedCursor:
        taken = self.streams[:count]
        return FeedCursor(
            advance_cursor(
                self.start.ledger, sorted(i for s, i in taken if s == LEDGER), self.now
            ),
            advance_cursor(
                self.start.notices, sorted(i for s, i in taken if s == NOTICES), self.now
            ),
        )

    @property
    def cursor(self) -> FeedCursor:
        return self.cursor_after(len(self.items))


def feed_condition(column, cursor: StreamCursor):
    """SQL: the row id `column` is past the stream's cursor (after it, or in a hole)."""
    condition = column > cursor.position
    for first, last, _ in cursor.holes:
        condition = or_(condition, column.between(first, last))
    return condition


def read_change_feed(cursor: FeedCursor, limit: int, now: datetime | None = None) -> FeedPage:
    """The next events after `cursor` (so, per member, in the order they happened), and
    the cursor to continue from.

    A consent change is a ledger event: its id is the event's receipt id, and it names the
    member by their current public id (a tombstone once erased); an erasure names the former
    one during the notice period, and null after it.
    """
    now = now or utcnow()
    notices = db.session.execute(
        select(
            ChangeEvent.id,
            ChangeEvent.public_id,
            ChangeEvent.type,
            ChangeEvent.created_at,
            ChangeEvent.former_public_id,
            ChangeEvent.after_event_id,
            ChangeEvent.request_id,
        )
        .where(feed_condition(ChangeEvent.id, cursor.notices))
        .order_by(ChangeEvent.id)
        .limit(limit)
    ).all()
    events = db.session.execute(
        select(
            ConsentEvent.id,
            ConsentEvent.receipt_id,
            ConsentEvent.created_at,
            ConsentEvent.purpose,
            ConsentEvent.granted,
            ConsentEvent.actor,
            ConsentEvent.method,
            Member.public_id,
            PolicyVersion.number,
            ConsentEvent.request_id,
        )
        .join(Member, Member.id == ConsentEvent.member_id)
        .outerjoin(PolicyVersion, PolicyVersion.id == ConsentEvent.policy_version_id)
        .where(feed_condition(ConsentEvent.id, cursor.ledger))
        .order_by(ConsentEvent.id)
        .limit(limit)
    ).all()
    # Merge on the ledger's order: a notice sorts after the event it follows, and never
    # before an earlier notice (so the notices handed out are always a prefix by id).
    merged, anchor = [(e.id, 0, e.id, e) for e in events], 0
    for n in notices:
        anchor = max(anchor, n.after_event_id)
        merged.append((anchor, 1, n.id, n))
    # A stream cut at `limit` may have more rows before the other's next one: stop at its last.
    bounds = []
    if len(events) == limit:
        bounds.append((events[-1].id, 0, events[-1].id))
    if len(notices) == limit:
        bounds.append((anchor, 1, notices[-1].id))
    merged.sort(key=lambda m: m[:3])
    if bounds:
        merged = [m for m in merged if m[:3] <= min(bounds)]
    merged = merged[:limit]
    cutoff = erasure_notice_cutoff(now)
    items, streams, request_ids = [], [], []
    for _key, is_notice, row_id, r in merged:
        request_ids.append(r.request_id)
        if is_notice:
            streams.append((NOTICES, row_id))
            items.append(
                event_document(
                    event_id=r.public_id,
                    event_type=r.type,
                    created_at=r.created_at,
                    member_id=r.former_public_id if r.created_at >= cutoff else None,
                )
            )
        else:
            streams.append((LEDGER, row_id))
            items.append(
                event_document(
                    event_id=r.receipt_id,
                    event_type=CONSENT_CHANGED,
                    created_at=r.created_at,
                    member_id=r.public_id,
                    purpose=r.purpose,
                    granted=r.granted,
                    policy_version=r.number,
                    actor=r.actor,
                    method=r.method,
                )
            )
    has_more = len(items) == limit or bool(bounds)
    return FeedPage(items, cursor, streams, has_more, now, request_ids)
