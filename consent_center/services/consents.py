"""Giving and withdrawing consent: the ledger, the current state, receipts and chain checks."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value

from ..clock import utcnow
from ..domain import ADVERTISING, OPTIONAL_PURPOSES, PURPOSES, Actor, GuardianStatus, Method
from ..extensions import db
from ..ledger_keys import (
    LEDGER_PUBLIC_KEY_PATH,
    LEGACY_KEY_ID,
    canonical,
    current_key_id,
    public_key_pem,
    sign,
)
from ..metrics import CONSENT_CHANGES, count_after_commit
from ..models import (
    ConsentEvent,
    ConsentState,
    GuardianLink,
    Member,
    PolicyVersion,
)
from ..models.consent import GENESIS_HASH
from ..models.types import UTCDateTime
from .audit import link_problem
from .errors import Conflict, Invalid, NotAllowed, NotFound
from .guardianship import is_guardian_of
from .policies import current_policy_id
from .sql import upsert
from .usability import is_active_account, is_minor, purpose_barred, stale_grant_condition

# The purposes a Global Privacy Control signal (`Sec-GPC: 1`) opts out of: the sale or
# sharing of the member's information.
GPC_PURPOSES = (ADVERTISING,)


class GpcConfirmationNeeded(Conflict):
    """A GPC purpose turned on while the browser sends GPC: the member confirms it first
    (`services.gpc.grant_despite_gpc`), and the ledger records that they overrode the signal."""


@dataclass(frozen=True)
class ConsentView:
    """A purpose with the member's current answer, for pages and the API."""

    purpose: str
    title: object
    description: object
    granted: bool
    changed_at: datetime | None
    receipt_id: str | None
    # A yes given under terms a later policy version changed: asked again, off until then.
    needs_reconsent: bool = False
    # Not open to this member at all (advertising for minors), with the reason shown.
    barred: bool = False
    # The account cannot give optional consent yet (a minor awaiting a guardian).
    locked: bool = False
    # A minor: only a guardian may switch it on (`guardian_may_grant`); these are the names
    # of the guardians who can. The minor may always switch it off.
    guardian_only: bool = False
    guardians: tuple[str, ...] = ()


def consent_columns(now):
    """The columns `consent_views` reads, over ConsentState joined to its ConsentEvent."""
    return (
        ConsentState.purpose,
        ConsentState.granted,
        ConsentState.updated_at,
        ConsentEvent.receipt_id,
        stale_grant_condition(now).label("stale"),
    )


@cache
def _consents_statement():
    # Built once: constructing the re-consent condition costs more than running it.
    now = bindparam("now", type_=UTCDateTime())
    return (
        select(*consent_columns(now))
        .join(ConsentEvent, ConsentEvent.id == ConsentState.event_id)
        .where(ConsentState.member_id == bindparam("member_id"))
    )


def current_consents(member: Member) -> list[ConsentView]:
    """Every optional purpose with the member's effective answer (off until granted, off
    again when a policy change asks anew). One query."""
    rows = db.session.execute(
        _consents_statement(), {"member_id": member.id, "now": utcnow()}
    ).all()
    return consent_views(member, rows)


def consent_views(member: Member, rows) -> list[ConsentView]:
    """The views of every optional purpose from rows of `consent_columns` (rows whose
    purpose is None, from an outer join that found nothing, are ignored)."""
    by_purpose = {r.purpose: r for r in rows if r.purpose is not None}
    locked = not is_active_account(member)
    guardian_only = is_minor(member)
    guardians = guardian_names(member) if guardian_only else ()
    views = []
    for key in OPTIONAL_PURPOSES:
        purpose, row = PURPOSES[key], by_purpose.get(key)
        stale = bool(row and row.granted and row.stale)
        barred = purpose_barred(member, key)
        views.append(
            ConsentView(
                key,
                purpose.title,
                purpose.description,
                granted=bool(row and row.granted) and not stale and not barred,
                changed_at=row.updated_at if row else None,
                receipt_id=row.receipt_id if row else None,
                needs_reconsent=stale,
                barred=barred,
                locked=locked,
                guardian_only=guardian_only,
                guardians=guardians,
            )
        )
    return views


def guardian_names(minor: Member) -> tuple[str, ...]:
    """The names of the minor's approved guardians: who can switch an optional purpose on."""
    return tuple(
        db.session.scalars(
            select(Member.name)
            .join(GuardianLink, GuardianLink.guardian_id == Member.id)
            .where(
                GuardianLink.minor_id == minor.id,
                GuardianLink.status == GuardianStatus.APPROVED,
            )
            .order_by(GuardianLink.id)
        )
    )


def needs_second_confirmation(member: Member, purpose: str) -> bool:
    """Advertising for a minor (where MINORS_ADVERTISING allows it at all) takes effect only
    once the guardian confirms through a second message sent after a delay ("email plus")."""
    return purpose == ADVERTISING and is_minor(member)


def guardian_may_grant(
    member: Member, purpose: str, actor: Actor, method: str, actor_member: Member | None
) -> bool:
    """A minor's optional consent belongs to the guardian (PIPL art. 31): only an approved
    guardian of theirs, acting as guardian, may grant it, and advertising only through the
    second confirmation (`needs_second_confirmation`). Anyone may grant an adult's."""
    if not is_minor(member):
        return True
    return (
        actor == Actor.GUARDIAN
        and actor_member is not None
        and is_guardian_of(actor_member, member.id)
        and (
            not needs_second_confirmation(member, purpose)
            or method == Method.GUARDIAN_CONFIRMATION
        )
    )


def consent_view(member: Member, purpose: str) -> ConsentView:
    for view in current_consents(member):
        if view.purpose == purpose:
            return view
    raise NotFound(_l("No such purpose."))


def set_consent(
    member: Member,
    purpose: str,
    granted: bool,
    *,
    actor: Actor,
    method: str,
    actor_member: Member | None = None,
    locale: str | None = None,
    gpc: bool = False,
) -> ConsentView:
    """Give or withdraw consent for an optional purpose: append a chained event to the
    member's ledger and update the current state, in the caller's transaction. Nothing else
    is written: the change feed, webhooks and the audit pages read the ledger itself.

    Four statements: the member's row is locked (``FOR UPDATE``; SQLite serialises writers
    on its own) and read for the chain's head and the policy version in force; the event is
    inserted; the state is upserted; the head moves to the new event. Two writers of one
    chain extend it one after the other, and (member_id, seq) is unique besides, so
    concurrent changes cannot fork it.

    :param locale: the language of the page the choice was made on (recorded and hashed
        with the event); None when no page was shown.
    :param gpc: the request carries Global Privacy Control (`Sec-GPC: 1`).
    :returns: the purpose's new view (its receipt is `receipt_id`), built without reading
        it back.
    :raises Invalid: for an unknown or non-optional purpose.
    :raises NotAllowed: when the account may not give optional consent (erased, or a minor
        awaiting a guardian, or a registration nobody verified yet), or when someone other
        than a minor's guardian grants a minor's (withdrawing is open to the minor always).
    :raises GpcConfirmationNeeded: when a GPC purpose is turned on while the browser sends
        GPC, other than by the member's confirmation (method ``gpc_override``).
    """
    if purpose not in PURPOSES or not PURPOSES[purpose].optional:
        raise Invalid(_l("There is no such optional purpose."))
    if granted and not is_active_account(member):
        raise NotAllowed(_l("This account cannot give optional consent yet."))
    if granted and purpose_barred(member, purpose):
        raise NotAllowed(
            _l(
                "This use is not open to members under %(age)d.",
                age=current_app.config["MINOR_AGE"],
            )
        )
    if granted and not guardian_may_grant(member, purpose, actor, method, actor_member):
        if actor == Actor.GUARDIAN and needs_second_confirmation(member, purpose):
            raise NotAllowed(
                _l("This takes effect only once you confirm through the second message we send.")
            )
        raise NotAllowed(
            _l(
                "Only your guardian can switch this on for you, because you are under "
                "%(age)d. You can switch it off at any time.",
                age=current_app.config["MINOR_AGE"],
            )
        )
    if granted and gpc and purpose in GPC_PURPOSES and method != Method.GPC_OVERRIDE:
        raise GpcConfirmationNeeded(
            _l("Your browser asks us not to use your information for advertising: confirm first.")
        )
    now = utcnow()
    head = db.session.execute(_head_statement(), {"member_id": member.id, "now": now}).one()
    event = ConsentEvent(
        member_id=member.id,
        seq=head.ledger_seq + 1,
        receipt_id=str(uuid.uuid4()),
        purpose=purpose,
        granted=granted,
        policy_version_id=head.policy_id,
        actor=actor,
        actor_member_id=actor_member.id if actor_member else None,
        method=method,
        created_at=now,
        prev_hash=head.ledger_hash or GENESIS_HASH,
        key_id=current_key_id(),
        locale=locale,
    )
    event.hash = event.compute_hash()
    # The ledger is append-only: the event is one INSERT, not a unit-of-work flush (its
    # defaults, such as the request id, are the table's).
    event.id = db.session.scalar(_insert_event_statement(), _event_row(event))
    count_after_commit(db.session, CONSENT_CHANGES.labels(purpose, "yes" if granted else "no"))
    db.session.execute(
        upsert(ConsentState, ("member_id", "purpose")),
        {
            "member_id": member.id,
            "purpose": purpose,
            "granted": granted,
            "event_id": event.id,
            "policy_version_id": event.policy_version_id,
            "updated_at": now,
        },
    )
    db.session.execute(
        _move_head_statement(),
        {"member_id": member.id, "seq": event.seq, "hash": event.hash},
    )
    # The loaded member now matches its row, without reading it back.
    set_committed_value(member, "ledger_seq", event.seq)
    set_committed_value(member, "ledger_hash", event.hash)
    return _view_after(member, event)


def _view_after(member: Member, event: ConsentEvent) -> ConsentView:
    """The purpose's view once `event` is its latest: an answer given now is under the
    version in force, so it is never one a later version asks about again."""
    minor = is_minor(member)
    barred = purpose_barred(member, event.purpose)
    return ConsentView(
        event.purpose,
        PURPOSES[event.purpose].title,
        PURPOSES[event.purpose].description,
        granted=event.granted and not barred,
        changed_at=event.created_at,
        receipt_id=event.receipt_id,
        barred=barred,
        locked=not is_active_account(member),
        guardian_only=minor,
        guardians=guardian_names(member) if minor else (),
    )


@cache
def _head_statement():
    # The head is on the row being locked: PostgreSQL returns the row's newest committed
    # version once the lock is granted, so a writer that waited sees its predecessor's head.
    return select(
        Member.ledger_seq,
        Member.ledger_hash,
        current_policy_id(bindparam("now", type_=UTCDateTime())).label("policy_id"),
    ).where(Member.id == bindparam("member_id")).with_for_update(of=Member)


# The ledger's writes name tables, not mapped classes: a statement on an entity goes through
# the ORM's bulk-persistence layer, which adds nothing here (no instances to synchronise)
# but its cost on every toggle.
@cache
def _insert_event_statement():
    table = ConsentEvent.__table__
    return insert(table).returning(table.c.id)


def _event_row(event: ConsentEvent) -> dict:
    """The event's column values as set, None included (it is hashed as None); columns never
    set take the table's defaults, as a unit-of-work INSERT would give them."""
    given = vars(event)
    return {c.key: given[c.key] for c in ConsentEvent.__table__.columns if c.key in given}


@cache
def _move_head_statement():
    table = Member.__table__
    return (
        update(table)
        .where(table.c.id == bindparam("member_id"))
        .values(ledger_seq=bindparam("seq"), ledger_hash=bindparam("hash"))
    )


def consent_history(member: Member, limit: int | None = None) -> list[ConsentEvent]:
    """The member's ledger, newest first."""
    query = (
        select(ConsentEvent)
        .where(ConsentEvent.member_id == member.id)
        .order_by(ConsentEvent.seq.desc())
    )
    if limit:
        query = query.limit(limit)
    return list(db.session.scalars(query))


def load_receipt_for(member: Member, receipt_id: str) -> ConsentEvent:
    """The member's own consent event with this receipt id.

    :raises NotFound: for an unknown receipt or one that belongs to someone else.
    """
    event = db.session.scalars(
        select(ConsentEvent).where(
            ConsentEvent.receipt_id == receipt_id, ConsentEvent.member_id == member.id
        )
    ).first()
    if event is None:
        raise NotFound(_l("No such receipt."))
    return event


def kantara_receipt(event: ConsentEvent, member: Member, policy_url: str) -> dict:
    """The event as a Kantara Consent Receipt v1.1 document."""
    config = current_app.config
    policy = (
        db.session.get(PolicyVersion, event.policy_version_id) if event.policy_version_id else None
    )
    purpose = PURPOSES[event.purpose]
    controller = {
        "piiController": config["COMPANY_NAME"],
        "contact": config["COMPANY_NAME"] + " customer service center",
        "address": config.get("COMPANY_ADDRESS") or "",
        "email": config["COMPANY_EMAIL"],
        "phone": config["COMPANY_PHONE"],
    }
    document = {
        "version": "KI-CR-v1.1.0",
        "jurisdiction": config.get("COMPANY_JURISDICTION", "CN"),
        "consentTimestamp": int(event.created_at.timestamp()),
        "collectionMethod": event.method,
        "consentReceiptID": event.receipt_id,
        # The site's Ed25519 key that signs this receipt ("x-signature"); also served at
        # "x-publicKeyUrl". docs/ledger.md says how to check a receipt offline.
        "publicKey": public_key_pem(),
        "language": "zh" if member.locale.startswith("zh") else "en",
        "piiPrincipalId": member.public_id,
        "piiControllers": [controller],
        "policyUrl": policy_url,
        "services": [
            {
                "service": config["COMPANY_NAME"] + " membership",
                "purposes": [
                    {
                        "purpose": str(purpose.title),
                        "purposeCategory": [purpose.kantara_category],
                        "consentType": "EXPLICIT",
                        "piiCategory": ["Name", "Gender", "Contact", "Date of birth"],
                        "primaryPurpose": False,
                        "termination": (
                            "Until withdrawn; withdraw at any time on the consents page"
                            if event.granted
                            else "Consent withdrawn"
                        ),
                        "thirdPartyDisclosure": False,
                        "thirdPartyName": None,
                    }
                ],
            }
        ],
        "sensitive": False,
        "spiCat": [],
        # Extensions beyond v1.1 that make the receipt self-explaining and verifiable.
        "x-granted": event.granted,
        "x-actor": event.actor,
        "x-policyVersion": policy.number if policy else None,
        "x-sequence": event.seq,
        "x-previousHash": event.prev_hash,
        "x-hash": event.hash,
        "x-keyId": event.key_id,
        # The language of the page the choice was made on (null: not recorded).
        "x-choiceLanguage": event.locale,
        "x-publicKeyUrl": _public_url(LEDGER_PUBLIC_KEY_PATH),
    }
    # Signed last, over everything above: a signed head of the member's chain at this event,
    # with which the member can prove offline what the company recorded.
    document["x-signature"] = sign(canonical(document))
    return document



def _public_url(path: str) -> str:
    return (current_app.config.get("PUBLIC_BASE_URL") or "").rstrip("/") + path


@dataclass(frozen=True)
class ChainReport:
    members_checked: int
    events_checked: int
    broken: list[tuple[int, int, str]]  # (member row id, seq, reason)
    # Current-state rows that differ from the ledger: (member public id, purpose, reason).
    drift: list[tuple[str, str, str]] = ()
    # Links made before chains were keyed (trusted only as far as a signed head covers them).
    legacy_events: int = 0

    @property
    def ok(self) -> bool:
        return not self.broken and not self.drift


def verify_ledger(member_id: int | None = None, batch: int = 5000) -> ChainReport:
    """Recompute every chain (or one member's) under the ledger keys, report each broken
    link, and check that the current state is exactly each purpose's latest event."""
    query = select(ConsentEvent).order_by(ConsentEvent.member_id, ConsentEvent.seq)
    if member_id is not None:
        query = query.where(ConsentEvent.member_id == member_id)
    broken: list[tuple[int, int, str]] = []
    members = events = legacy = 0
    current, prev_hash, expected_seq, keyed = None, GENESIS_HASH, 1, False
    for event in db.session.scalars(query.execution_options(yield_per=batch)):
        if event.member_id != current:
            current, prev_hash, expected_seq, keyed = event.member_id, GENESIS_HASH, 1, False
            members += 1
        events += 1
        if event.seq != expected_seq:
            broken.append((event.member_id, event.seq, f"expected seq {expected_seq}"))
        if event.prev_hash != prev_hash:
            broken.append((event.member_id, event.seq, "previous hash does not match"))
        if problem := link_problem(event, keyed):
            broken.append((event.member_id, event.seq, problem))
        if event.key_id == LEGACY_KEY_ID:
            legacy += 1
        else:
            keyed = True
        prev_hash, expected_seq = event.hash, event.seq + 1
    broken += head_problems(member_id)
    return ChainReport(members, events, sorted(broken), state_drift(member_id), legacy)


def head_problems(member_id: int | None = None) -> list[tuple[int, int, str]]:
    """Every member row whose chain head (`ledger_seq`, `ledger_hash`) is not the last
    event of its chain (0 and None for an empty one): (member row id, head seq, reason)."""
    last = (
        select(ConsentEvent.member_id, func.max(ConsentEvent.seq).label("seq"))
        .group_by(ConsentEvent.member_id)
        .subquery()
    )
    tail = aliased(ConsentEvent)
    query = (
        select(Member.id, Member.ledger_seq, tail.seq)
        .outerjoin(last, last.c.member_id == Member.id)
        .outerjoin(tail, (tail.member_id == last.c.member_id) & (tail.seq == last.c.seq))
        .where(
            or_(
                Member.ledger_seq != func.coalesce(tail.seq, 0),
                Member.ledger_hash.is_distinct_from(tail.hash),
            )
        )
    )
    if member_id is not None:
        query = query.where(Member.id == member_id)
    return [
        (row_id, head, f"chain head on the member row is not its last link (seq {seq or 0})")
        for row_id, head, seq in db.session.execute(query)
    ]


def state_drift(member_id: int | None = None) -> list[tuple[str, str, str]]:
    """Every current-state row that is not its purpose's latest event (answer, event or policy
    version), and every latest event without a state row: (member public id, purpose, reason).
    Two set-wise queries."""
    latest = select(
        ConsentEvent.member_id, ConsentEvent.purpose, func.max(ConsentEvent.seq).label("seq")
    ).group_by(ConsentEvent.member_id, ConsentEvent.purpose)
    if member_id is not None:
        latest = latest.where(ConsentEvent.member_id == member_id)
    latest = latest.subquery()
    last = aliased(ConsentEvent)
    wrong_states = (
        select(Member.public_id, ConsentState.purpose, last.id)
        .select_from(ConsentState)
        .join(Member, Member.id == ConsentState.member_id)
        .outerjoin(
            latest,
            (latest.c.member_id == ConsentState.member_id)
            & (latest.c.purpose == ConsentState.purpose),
        )
        .outerjoin(last, (last.member_id == latest.c.member_id) & (last.seq == latest.c.seq))
        .where(
            or_(
                last.id.is_(None),
                last.id != ConsentState.event_id,
                last.granted != ConsentState.granted,
                last.policy_version_id.is_distinct_from(ConsentState.policy_version_id),
                last.created_at != ConsentState.updated_at,
            )
        )
    )
    if member_id is not None:
        wrong_states = wrong_states.where(ConsentState.member_id == member_id)
    missing_states = (
        select(Member.public_id, latest.c.purpose)
        .select_from(latest)
        .join(Member, Member.id == latest.c.member_id)
        .outerjoin(
            ConsentState,
            (ConsentState.member_id == latest.c.member_id)
            & (ConsentState.purpose == latest.c.purpose),
        )
        .where(ConsentState.member_id.is_(None))
    )
    drift = [
        (
            public_id,
            purpose,
            "state has no event" if event_id is None else "state differs from the latest event",
        )
        for public_id, purpose, event_id in db.session.execute(wrong_states)
    ]
    drift += [
        (public_id, purpose, "latest event has no state")
        for public_id, purpose in db.session.execute(missing_states)
    ]
    return sorted(drift)



def receipt_json(event: ConsentEvent, member: Member, policy_url: str) -> str:
    return json.dumps(kantara_receipt(event, member, policy_url), ensure_ascii=False, indent=2)
