"""Retention: the rules that make every retention promise of the data inventory true.

`flask retention run` applies them all, once a day (the notify worker runs it too, see
notify/worker.py DAILY_TASKS). Each rule removes only what has passed its limit, so running
it twice, or late, is harmless. docs/retention.md maps each promise to its rule and test.

- **codes**: sign-in and verification code rows, CODE_RETENTION_HOURS after they expire.
- **messages**: the text and address of a settled outbox row, OUTBOX_RETENTION_DAYS after it
  was sent (or written, when it never went out). The row itself (kind, status, times) stays.
- **sessions**: server-side session rows once they have ended.
- **erasure notices**: the former member number in a change-feed erasure notice, after
  API_ERASURE_NOTICE_DAYS.
- **closed chains**: an erased member's consent ledger, audit chain, current choices,
  change-feed events, deletion requests, guardian links (as the child) and the records of
  messages sent to them, LEDGER_RETENTION_YEARS after the erasure.
  The chains go whole (no gap is left inside a chain, so `flask ledger verify` and
  `flask audit verify` still pass); a `retention.chain_closed` entry in the system audit
  chain records the last link of each removed chain, so an archived heads statement that
  lists them is still explained (`flask ledger verify --heads`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, exists, func, or_, select, update

from ..clock import utcnow
from ..domain import CODE_RETENTION_HOURS, MemberStatus, NotificationStatus
from ..extensions import db
from ..models import (
    AuditEvent,
    ChangeEvent,
    ConsentEvent,
    ConsentState,
    DeletionRequest,
    GuardianLink,
    Member,
    MemberSession,
    Notification,
    NotificationSubject,
    OneTimeCode,
)
from ..models.notification import CONTENT_COLUMNS
from .audit import lock_member, record_audit
from .downstream import forget_expired_erasure_notices

CHAIN_CLOSED = "retention.chain_closed"
# Members whose records are removed per round of statements.
CLOSE_BATCH = 500

# Outbox rows whose delivery is over: their content is no longer needed to send them.
_SETTLED = (
    NotificationStatus.SENT,
    NotificationStatus.DELIVERED,
    NotificationStatus.FAILED,
    NotificationStatus.DEAD,
)


def years_before(moment: datetime, years: int) -> datetime:
    """The same calendar moment `years` earlier (29 February becomes 28 February)."""
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:
        return moment.replace(year=moment.year - years, day=28)


def purge_expired_codes(now: datetime) -> int:
    """Delete code rows that expired more than CODE_RETENTION_HOURS ago (no commit)."""
    cutoff = now - timedelta(hours=CODE_RETENTION_HOURS)
    return db.session.execute(
        delete(OneTimeCode)
        .where(OneTimeCode.expires_at < cutoff)
        .execution_options(synchronize_session=False)
    ).rowcount


def purge_message_contents(now: datetime) -> int:
    """Blank the text and address of settled messages past OUTBOX_RETENTION_DAYS (no commit).

    :returns: how many messages were blanked.
    """
    cutoff = now - timedelta(days=current_app.config["OUTBOX_RETENTION_DAYS"])
    return db.session.execute(
        update(Notification)
        .where(
            Notification.status.in_(_SETTLED),
            func.coalesce(Notification.sent_at, Notification.created_at) < cutoff,
            or_(*(getattr(Notification, name).is_not(None) for name in CONTENT_COLUMNS)),
        )
        .values(dict.fromkeys(CONTENT_COLUMNS))
        .execution_options(synchronize_session=False)
    ).rowcount


def purge_ended_sessions(now: datetime) -> int:
    """Delete every session row that has ended (no commit)."""
    return db.session.execute(
        delete(MemberSession)
        .where(MemberSession.expires_at <= now)
        .execution_options(synchronize_session=False)
    ).rowcount


def _head(model, chain_column, member_id: int) -> list | None:
    row = db.session.execute(
        select(model.seq, model.hash)
        .where(chain_column == member_id)
        .order_by(model.seq.desc())
        .limit(1)
    ).first()
    return [row.seq, row.hash] if row else None


def close_expired_chains(now: datetime) -> int:
    """Delete what is kept about members erased more than LEDGER_RETENTION_YEARS ago,
    recording in the system audit chain the last link of each chain removed (no commit).

    Kept: the member's tombstone row (a random number, the status and the erasure date) and
    audit entries in other members' chains that name it as the actor.

    :returns: how many members' records were removed.
    """
    cutoff = years_before(now, current_app.config["LEDGER_RETENTION_YEARS"])
    # Erasure writes `member.erased` into the member's own audit chain, so a member whose
    # records are still here has that chain (both lookups use an index).
    has_records = or_(
        exists().where(ConsentEvent.member_id == Member.id),
        exists().where(AuditEvent.subject_member_id == Member.id),
    )
    members = db.session.scalars(
        select(Member)
        .where(Member.status == MemberStatus.ERASED, Member.erased_at < cutoff, has_records)
        .order_by(Member.id)
    ).all()
    for start in range(0, len(members), CLOSE_BATCH):
        part = members[start : start + CLOSE_BATCH]
        ids = [member.id for member in part]
        heads = []
        for member in part:
            lock_member(member.id)  # no link is appended to the chains while they go
            heads.append(
                (
                    member,
                    _head(ConsentEvent, ConsentEvent.member_id, member.id),
                    _head(AuditEvent, AuditEvent.subject_member_id, member.id),
                )
            )
        messages = select(Notification.id).where(Notification.member_id.in_(ids))
        # Set-wise, one statement per table for the whole batch.
        for statement in (
            delete(ConsentState).where(ConsentState.member_id.in_(ids)),
            delete(ChangeEvent).where(ChangeEvent.member_id.in_(ids)),
            delete(ConsentEvent).where(ConsentEvent.member_id.in_(ids)),
            delete(DeletionRequest).where(DeletionRequest.member_id.in_(ids)),
            # Links where the member was the child; a link where they were the guardian is
            # the ward's record and stays while the ward is a member.
            delete(GuardianLink).where(GuardianLink.minor_id.in_(ids)),
            delete(NotificationSubject).where(NotificationSubject.notification_id.in_(messages)),
            delete(Notification).where(Notification.member_id.in_(ids)),
            delete(AuditEvent).where(AuditEvent.subject_member_id.in_(ids)),
            # The ledger chain is gone: its head on the member row goes back to empty.
            update(Member).where(Member.id.in_(ids)).values(ledger_seq=0, ledger_hash=None),
        ):
            db.session.execute(statement.execution_options(synchronize_session=False))
        for member, ledger, audit in heads:
            record_audit(
                CHAIN_CLOSED,
                actor=None,
                member_row=member.id,
                erased_at=member.erased_at.isoformat(),
                ledger_head=ledger,
                audit_head=audit,
            )
    db.session.expire_all()
    return len(members)


# (name printed by the command, rule). Each takes the moment it applies the limits at.
RETENTION_RULES: tuple[tuple[str, Callable[[datetime], int]], ...] = (
    ("codes", purge_expired_codes),
    ("messages", purge_message_contents),
    ("sessions", purge_ended_sessions),
    ("erasure-notices", forget_expired_erasure_notices),
    ("closed-chains", close_expired_chains),
)


def apply_retention(now: datetime | None = None) -> dict[str, int]:
    """Apply every retention rule at `now` (default: the clock) and return what each removed.

    Writes a `retention.applied` audit entry with the counts when anything was removed. No
    commit.
    """
    now = now or utcnow()
    counts = {name: rule(now) for name, rule in RETENTION_RULES}
    if any(counts.values()):
        record_audit("retention.applied", actor=None, **counts)
    return counts


def closed_chains() -> dict[tuple[str, int], list[list]]:
    """The last links (``[seq, hash]``) of every chain removed by retention, keyed by
    (``"ledger"`` or ``"audit"``, member row id), from the `retention.chain_closed` audit
    entries (a list: a chain that grew again after one closing can be closed again)."""
    closed: dict[tuple[str, int], list[list]] = {}
    for details in db.session.scalars(
        select(AuditEvent.details).where(
            AuditEvent.subject_member_id.is_(None), AuditEvent.action == CHAIN_CLOSED
        )
    ):
        for kind in ("ledger", "audit"):
            if details.get(f"{kind}_head"):
                closed.setdefault((kind, details["member_row"]), []).append(
                    details[f"{kind}_head"]
                )
    return closed
