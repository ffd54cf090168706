"""Signed chain heads: a statement, archived outside the database, of where every consent
ledger chain and audit chain ended at one moment.

`flask ledger heads` prints it; `flask ledger verify --heads FILE` later proves that no link
up to those heads has changed since. The signature (Ed25519, ledger_keys.py) shows the file
itself was not edited; the public key is served at /.well-known/consent-ledger-key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from sqlalchemy import func, select, tuple_

from ..clock import utcnow
from ..extensions import db
from ..ledger_keys import canonical, public_key_id, sign, signature_valid
from ..models import AuditEvent, ConsentEvent
from .retention import closed_chains

HEADS_FORMAT = "consent-center-chain-heads/1"
SYSTEM_CHAIN = "system"
GONE = "the link is gone"


def _heads(model, chain_column) -> list[list]:
    last = (
        select(chain_column.label("chain"), func.max(model.seq).label("seq"))
        .group_by(chain_column)
        .subquery()
    )
    rows = db.session.execute(
        select(chain_column, model.seq, model.hash)
        .join(
            last,
            (func.coalesce(chain_column, 0) == func.coalesce(last.c.chain, 0))
            & (model.seq == last.c.seq),
        )
        .order_by(func.coalesce(chain_column, 0))
    ).all()
    return [[SYSTEM_CHAIN if chain is None else chain, seq, digest] for chain, seq, digest in rows]


def heads_digest(ledger: list, audit: list) -> str:
    return hashlib.sha256(canonical({"ledger": ledger, "audit": audit})).hexdigest()


def signed_heads() -> dict:
    """Every chain's last link (ledger per member row id, audit per subject row id or
    "system"), their digest, and an Ed25519 signature over the statement."""
    ledger = _heads(ConsentEvent, ConsentEvent.member_id)
    audit = _heads(AuditEvent, AuditEvent.subject_member_id)
    statement = {
        "format": HEADS_FORMAT,
        "created_at": utcnow().isoformat(timespec="seconds"),
        "public_key_id": public_key_id(),
        "digest": heads_digest(ledger, audit),
    }
    return dict(statement, signature=sign(canonical(statement)), ledger=ledger, audit=audit)


@dataclass(frozen=True)
class HeadsReport:
    heads_checked: int
    problems: list[str]
    # Heads of chains that retention removed since the statement (services/retention.py).
    closed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_heads(document: dict) -> HeadsReport:
    """Check a signed heads statement against the database: its signature, its digest, and
    that every head it lists is still the link at that position. With `verify_ledger` and
    `verify_audit_log` (each link chained to the one before), that proves no link up to a
    head has changed since the statement was made. A head of a chain that retention closed
    since (services/retention.py) is listed in `closed`, not in `problems`."""
    try:
        ledger, audit = document["ledger"], document["audit"]
        statement = {k: document[k] for k in ("format", "created_at", "public_key_id", "digest")}
        signature = document["signature"]
    except (KeyError, TypeError):
        return HeadsReport(0, ["not a chain heads statement"])
    if statement["format"] != HEADS_FORMAT:
        return HeadsReport(0, [f"unknown format {statement['format']!r}"])
    if not isinstance(signature, str) or not signature_valid(canonical(statement), signature):
        return HeadsReport(0, ["the signature is not valid for this site's signing key"])
    if heads_digest(ledger, audit) != statement["digest"]:
        return HeadsReport(0, ["the listed heads do not match the signed digest"])
    closed = closed_chains()
    problems: list[str] = []
    explained: list[str] = []
    for model, column, heads, kind, label in (
        (ConsentEvent, ConsentEvent.member_id, ledger, "ledger", "ledger member-row"),
        (AuditEvent, AuditEvent.subject_member_id, audit, "audit", "audit"),
    ):
        for problem, chain, seq, digest in _compare(model, column, heads):
            # A chain removed whole by retention is explained by the audited record of its
            # last link, if the listed head was that link or came before it.
            final = next(
                (
                    head
                    for head in closed.get((kind, chain), [])
                    if head[0] > seq or (head[0] == seq and head[1] == digest)
                ),
                None,
            )
            if problem == GONE and final:
                explained.append(
                    f"{label} {chain} seq={seq}: removed by retention (chain closed at "
                    f"seq={final[0]})"
                )
            else:
                problems.append(f"{label} {chain} seq={seq}: {problem}")
    return HeadsReport(len(ledger) + len(audit), problems, explained)


def _compare(model, chain_column, heads: list, batch: int = 1000) -> list[tuple]:
    """Each listed head that is not the link at its position: (problem, chain, seq, hash)."""
    problems = []
    for start in range(0, len(heads), batch):
        part = heads[start : start + batch]
        keys = [(0 if chain == SYSTEM_CHAIN else chain, seq) for chain, seq, _ in part]
        found = {
            (chain or 0, seq): digest
            for chain, seq, digest in db.session.execute(
                select(chain_column, model.seq, model.hash).where(
                    tuple_(func.coalesce(chain_column, 0), model.seq).in_(keys)
                )
            )
        }
        for (chain, seq), (_, _, digest) in zip(keys, part, strict=True):
            name = SYSTEM_CHAIN if chain == 0 else chain
            if (chain, seq) not in found:
                problems.append((GONE, name, seq, digest))
            elif found[(chain, seq)] != digest:
                problems.append(("the link changed since the heads", name, seq, digest))
    return problems
