"""Writing the audit log (hash-chained per subject), reading it for staff, and verifying it.

A member's consent changes are not copied into the audit log: the consent ledger records
them (with who acted), and staff read both merged in time order (`audit_page`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import bindparam, case, func, literal, or_, select, union_all
from sqlalchemy.orm import aliased

from ..clock import utcnow
from ..extensions import db
from ..ledger_keys import LEGACY_KEY_ID, UnknownKey, current_key_id
from ..models import AuditEvent, ConsentEvent, Member
from ..models.audit import AUDIT_GENESIS_HASH

# pg_advisory_xact_lock key serialising writers of the system chain (entries without a
# subject); member chains are serialised by locking the member's row instead.
SYSTEM_CHAIN_LOCK_KEY = 0x61756469  # "audi"


def _plain(details: dict) -> dict:
    """The details exactly as the JSON column will give them back (so the hash verifies)."""
    return json.loads(json.dumps(details, default=str, sort_keys=True))


def _chain(subject_id: int | None):
    if subject_id is None:
        return AuditEvent.subject_member_id.is_(None)
    return AuditEvent.subject_member_id == subject_id


@dataclass(frozen=True)
class ChainTail:
    """The last link of a chain (None, None for an empty one)."""

    seq: int | None
    hash: str | None


def lock_member(member_id: int) -> None:
    """Lock the member's row until commit (PostgreSQL; SQLite serialises writers on its own).

    Writers of a member's ledger and audit chain take it first, so concurrent changes
    extend the chains one after the other.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(_lock_member_statement(), {"member_id": member_id})


@cache
def _lock_member_statement():
    return select(Member.id).where(Member.id == bindparam("member_id")).with_for_update()


def _lock_chain(subject_id: int | None) -> None:
    """Hold the chain until commit so concurrent writers extend it one after the other.

    On PostgreSQL: the subject's member row (``FOR UPDATE``; `set_consent` already holds it)
    or a transaction-scoped advisory lock for the system chain. SQLite serialises writers on
    its own. The unique (subject, seq) constraints stop a fork even if this were skipped.
    """
    if subject_id is not None:
        lock_member(subject_id)
    elif db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(select(func.pg_advisory_xact_lock(SYSTEM_CHAIN_LOCK_KEY)))


def record_audit(
    action: str,
    *,
    actor: Member | None,
    subject: Member | None = None,
    tail: ChainTail | None = None,
    **details: object,
) -> AuditEvent:
    """Append an audit entry to the subject's chain in the current unit of work.

    :param action: dotted name such as ``consent.granted`` or ``auth.signed_in``.
    :param actor: who acted (None for the system).
    :param subject: whose account it concerns; entries without one join the system chain.
    :param tail: the subject chain's last link, when the caller read it after taking the
        subject's lock (`lock_member`) in this transaction; else it is locked and read here.
    :param details: non-personal facts only (ids, purposes, counts).
    """
    if (actor is not None and actor.id is None) or (subject is not None and subject.id is None):
        db.session.flush()
    subject_id = subject.id if subject is not None else None
    if tail is None or subject_id is None:
        _lock_chain(subject_id)
        last = db.session.execute(
            select(AuditEvent.seq, AuditEvent.hash)
            .where(_chain(subject_id))
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        ).first()
        tail = ChainTail(last.seq, last.hash) if last else ChainTail(None, None)
    event = AuditEvent(
        action=action,
        actor_member_id=actor.id if actor is not None else None,
        subject_member_id=subject_id,
        details=_plain(details),
        created_at=utcnow(),
        seq=(tail.seq or 0) + 1,
        prev_hash=tail.hash or AUDIT_GENESIS_HASH,
        key_id=current_key_id(),
    )
    event.hash = event.compute_hash()
    db.session.add(event)
    db.session.flush()
    return event


# --- Verification -------------------------------------------------------------------------


def link_problem(event, keyed_before: bool) -> str | None:
    """Why a ledger or audit link's own hash is wrong (None when it is right).

    :param keyed_before: whether an earlier link of the same chain was keyed: an unkeyed
        (legacy) link after it can only be a forgery, since new links are always keyed.
    """
    if event.key_id == LEGACY_KEY_ID and keyed_before:
        return "unkeyed link after a keyed one"
    try:
        digest = event.compute_hash()
    except UnknownKey:
        return f"unknown key id {event.key_id!r}"
    if digest != event.hash:
        return "content does not match its hash"
    return None


@dataclass(frozen=True)
class AuditChainReport:
    chains_checked: int
    events_checked: int
    # (subject member row id or None for the system chain, seq, reason)
    broken: list[tuple[int | None, int, str]]

    @property
    def ok(self) -> bool:
        return not self.broken


def verify_audit_log(batch: int = 5000) -> AuditChainReport:
    """Recompute every audit chain and report each broken link.

    A changed entry breaks its own hash; a removed or inserted one breaks the sequence and
    the next entry's link. Erasure re-keys nothing (the subject stays the tombstone row), so
    chains of erased members still verify.
    """
    query = (
        select(AuditEvent)
        .order_by(func.coalesce(AuditEvent.subject_member_id, 0), AuditEvent.seq)
        .execution_options(yield_per=batch)
    )
    broken: list[tuple[int | None, int, str]] = []
    chains = events = 0
    current: object = object()
    prev_hash, expected_seq, keyed = AUDIT_GENESIS_HASH, 1, False
    for event in db.session.scalars(query):
        if event.subject_member_id != current:
            current, prev_hash, expected_seq = event.subject_member_id, AUDIT_GENESIS_HASH, 1
            keyed = False
            chains += 1
        events += 1
        subject = event.subject_member_id
        if event.seq != expected_seq:
            broken.append((subject, event.seq, f"expected seq {expected_seq}"))
        if event.prev_hash != prev_hash:
            broken.append((subject, event.seq, "previous hash does not match"))
        if problem := link_problem(event, keyed):
            broken.append((subject, event.seq, problem))
        keyed = keyed or event.key_id != LEGACY_KEY_ID
        prev_hash, expected_seq = event.hash, event.seq + 1
    return AuditChainReport(chains, events, broken)


# --- Reading the log (staff) ----------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    """What staff narrowed the log to; every part is optional."""

    actor: str | None = None  # an actor's public id or email address
    action: str | None = None  # an action, or its prefix such as ``policy.``
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive

    def as_args(self) -> dict[str, str]:
        return {k: v for k, v in (("actor", self.actor), ("action", self.action)) if v}


@dataclass(frozen=True)
class AuditRow:
    """One entry as staff read it: from the audit log, or a consent change read from the
    consent ledger (`chain` "ledger"), which is not copied into the audit log."""

    created_at: datetime
    action: str
    actor_public_id: str | None
    actor_role: str | None
    subject_public_id: str | None
    details: dict
    chain: str  # "system", "member" (audit chains) or "ledger"
    seq: int
    prev_hash: str
    hash: str


CONSENT_ACTIONS = ("consent.granted", "consent.withdrawn")
AUDIT, LEDGER = "audit", "ledger"


def _ledger_action():
    return case((ConsentEvent.granted.is_(True), literal(CONSENT_ACTIONS[0])),
                else_=literal(CONSENT_ACTIONS[1]))  # fmt: skip


def _entries(filters: AuditFilters):
    """SQL: (kind, id, created_at) of every matching entry of the audit log and the ledger."""
    parts = []
    for kind, model, actor_column, action in (
        (AUDIT, AuditEvent, AuditEvent.actor_member_id, AuditEvent.action),
        (LEDGER, ConsentEvent, ConsentEvent.actor_member_id, _ledger_action()),
    ):
        actor = aliased(Member)
        query = select(
            literal(kind).label("kind"), model.id.label("id"), model.created_at.label("at")
        )
        if filters.actor:
            needle = filters.actor.strip()
            query = query.join(actor, actor.id == actor_column).where(
                or_(actor.public_id == needle, actor.email == needle.lower())
            )
        if filters.action:
            query = query.where(action.startswith(filters.action.strip(), autoescape=True))
        if filters.since is not None:
            query = query.where(model.created_at >= filters.since)
        if filters.until is not None:
            query = query.where(model.created_at < filters.until)
        parts.append(query)
    return union_all(*parts).subquery()


def _rows(keys) -> list[AuditRow]:
    """The entries named by (kind, id) keys, in the keys' order: one query per kind."""
    wanted = {kind: [k.id for k in keys if k.kind == kind] for kind in (AUDIT, LEDGER)}
    actor, subject = aliased(Member), aliased(Member)
    found: dict[tuple[str, int], AuditRow] = {}
    if wanted[AUDIT]:
        for e, actor_id, role, subject_id in db.session.execute(
            select(AuditEvent, actor.public_id, actor.role, subject.public_id)
            .outerjoin(actor, actor.id == AuditEvent.actor_member_id)
            .outerjoin(subject, subject.id == AuditEvent.subject_member_id)
            .where(AuditEvent.id.in_(wanted[AUDIT]))
        ):
            found[(AUDIT, e.id)] = AuditRow(
                e.created_at, e.action, actor_id, role, subject_id, e.details,
                "system" if e.subject_member_id is None else "member", e.seq, e.prev_hash, e.hash,
            )  # fmt: skip
    if wanted[LEDGER]:
        for e, actor_id, role, subject_id in db.session.execute(
            select(ConsentEvent, actor.public_id, actor.role, subject.public_id)
            .outerjoin(actor, actor.id == ConsentEvent.actor_member_id)
            .join(subject, subject.id == ConsentEvent.member_id)
            .where(ConsentEvent.id.in_(wanted[LEDGER]))
        ):
            details = {"purpose": e.purpose, "method": e.method, "receipt": e.receipt_id}
            found[(LEDGER, e.id)] = AuditRow(
                e.created_at, CONSENT_ACTIONS[0] if e.granted else CONSENT_ACTIONS[1], actor_id,
                role, subject_id, details, LEDGER, e.seq, e.prev_hash, e.hash,
            )  # fmt: skip
    return [found[(k.kind, k.id)] for k in keys]


def audit_page(filters: AuditFilters, page: int = 1, per_page: int = 100) -> tuple[list, bool]:
    """One page of matching entries (the audit log and the ledger's consent changes merged
    in time order), newest first, and whether an older page exists."""
    page = max(page, 1)
    entries = _entries(filters)
    keys = db.session.execute(
        select(entries)
        .order_by(entries.c.at.desc(), entries.c.kind, entries.c.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page + 1)
    ).all()
    return _rows(keys[:per_page]), len(keys) > per_page


def audit_actions() -> list[str]:
    """Every action name in the log and the ledger's two (for the filter's suggestions)."""
    logged = db.session.scalars(select(AuditEvent.action).distinct())
    return sorted(set(logged) | set(CONSENT_ACTIONS))


def iter_audit_rows(filters: AuditFilters, batch: int = 2000) -> Iterator[AuditRow]:
    """Every matching entry (audit log and ledger merged), oldest first, in batches."""
    entries = _entries(filters)
    keys = db.session.execute(
        select(entries)
        .order_by(entries.c.at, entries.c.kind, entries.c.id)
        .execution_options(yield_per=batch)
    )
    for part in keys.partitions():
        yield from _rows(part)
