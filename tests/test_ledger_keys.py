"""Keyed chains that someone with the database cannot recompute, a current state proven
against the ledger, and signed chain heads and receipts that can be checked offline."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
from sqlalchemy import select, update

from consent_center import create_app
from consent_center.domain import Actor, Method
from consent_center.extensions import db
from consent_center.ledger_keys import LEGACY_KEY_ID
from consent_center.models import AuditEvent, ConsentEvent, ConsentState
from consent_center.services.consents import set_consent, verify_ledger
from tests.conftest import make_member, post

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def toggle(member, purpose: str, granted: bool):
    return set_consent(
        member, purpose, granted, actor=Actor.MEMBER, method=Method.FORM, actor_member=member
    )


def history(member) -> None:
    """Four ledger events, and (consent changes are not copied there) audit entries in the
    member's audit chain."""
    from consent_center.services.audit import record_audit

    for granted in (True, False, True):
        toggle(member, "advertising", granted)
        record_audit("test.member", actor=member, subject=member, purpose="advertising")
    toggle(member, "trend_analysis", True)
    db.session.commit()


# What an attacker who can read the code and write the database computes: the canonical
# content of each link under plain SHA-256, as the chains were before they were keyed.
def plain_consent_hash(e: ConsentEvent) -> str:
    payload = {
        "prev_hash": e.prev_hash, "member_id": e.member_id, "seq": e.seq,
        "receipt_id": e.receipt_id, "purpose": e.purpose, "granted": e.granted,
        "policy_version_id": e.policy_version_id, "actor": e.actor,
        "actor_member_id": e.actor_member_id, "method": e.method,
        "created_at": e.created_at.isoformat(timespec="microseconds"),
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def plain_audit_hash(e: AuditEvent) -> str:
    payload = {
        "v": 1, "prev_hash": e.prev_hash, "subject": e.subject_member_id, "seq": e.seq,
        "actor": e.actor_member_id, "action": e.action, "details": e.details or {},
        "created_at": e.created_at.isoformat(timespec="microseconds"),
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def rewrite_chain(model, rows, plain_hash, key_id=None) -> None:
    """Recompute every link from the first changed one, like an attacker would (a ledger
    chain's head on the member row too)."""
    from consent_center.models import Member

    prev = rows[0].prev_hash
    for row in rows:
        row.prev_hash = prev
        if key_id is not None:
            row.key_id = key_id
        row.hash = prev = plain_hash(row)
    if model is ConsentEvent:
        db.session.get(Member, rows[-1].member_id).ledger_hash = rows[-1].hash
    db.session.commit()


def test_new_links_are_keyed(app, member, policy):
    history(member)
    events = db.session.scalars(select(ConsentEvent)).all()
    audits = db.session.scalars(select(AuditEvent)).all()
    assert {e.key_id for e in events + audits} == {app.config["LEDGER_KEY_ID"]}
    assert all(e.hash != plain_consent_hash(e) for e in events)
    assert all(e.hash != plain_audit_hash(e) for e in audits)


def test_a_changed_event_with_recomputed_sha256_hashes_is_caught(app, member, runner, policy):
    history(member)
    chain = db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.seq)).all()
    # The attacker turns the withdrawal (seq 2) into a yes and re-links the rest of the chain;
    # the state row of its purpose is left as the latest event says, so only the keys can tell.
    chain[1].granted = True
    rewrite_chain(ConsentEvent, chain[1:], plain_consent_hash)
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 1, result.output
    assert "seq=2: content does not match its hash" in result.output
    # Claiming the links predate keyed chains does not help either.
    rewrite_chain(ConsentEvent, chain[1:], plain_consent_hash, key_id=LEGACY_KEY_ID)
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 1 and "unkeyed link" in result.output, result.output


def test_a_changed_audit_entry_with_recomputed_sha256_hashes_is_caught(app, member, runner, policy):
    history(member)
    chain = db.session.scalars(
        select(AuditEvent).where(AuditEvent.subject_member_id == member.id).order_by(AuditEvent.seq)
    ).all()
    chain[0].details = dict(chain[0].details, purpose="trend_analysis")
    rewrite_chain(AuditEvent, chain, plain_audit_hash)
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1 and "content does not match its hash" in result.output


def test_keys_rotate_and_old_chains_still_verify(app, member, runner, policy):
    history(member)
    old_id, old_key = app.config["LEDGER_KEY_ID"], app.config["LEDGER_KEY"]
    app.config.update(LEDGER_KEY_ID="k2", LEDGER_KEY="a-newer-ledger-key-of-32-characters!")
    # Without the old key listed, the old links cannot be checked: that is a failure.
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 1 and f"unknown key id '{old_id}'" in result.output
    app.config["LEDGER_OLD_KEYS"] = f"{old_id}:{old_key}"
    toggle(member, "advertising", False)
    db.session.commit()
    keys = db.session.scalars(select(ConsentEvent.key_id).order_by(ConsentEvent.seq)).all()
    assert keys == [old_id] * 4 + ["k2"]
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0


def test_links_from_before_keyed_chains_still_verify(app, member, runner, policy):
    """Rows the migration marked sha256-legacy verify as plain SHA-256, and a chain goes on
    from them under the key."""
    history(member)
    for model, plain in ((ConsentEvent, plain_consent_hash), (AuditEvent, plain_audit_hash)):
        rows = db.session.scalars(select(model).order_by(model.id)).all()
        for chain in {getattr(r, "member_id", None) or r.subject_member_id for r in rows}:
            mine = [r for r in rows if (getattr(r, "member_id", None) or r.subject_member_id)
                    == chain]
            rewrite_chain(model, sorted(mine, key=lambda r: r.seq), plain, LEGACY_KEY_ID)
    toggle(member, "trend_analysis", False)
    db.session.commit()
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 0, result.output
    assert "4 events predate keyed chains" in result.output
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0


@pytest.mark.parametrize("drift", ["flipped", "missing", "stale"])
def test_verify_proves_the_current_state(app, member, runner, policy, drift):
    history(member)
    assert runner.invoke(args=["ledger", "verify"]).exit_code == 0
    state = (ConsentState.member_id == member.id) & (ConsentState.purpose == "advertising")
    if drift == "flipped":
        db.session.execute(update(ConsentState).where(state).values(granted=False))
        expected = "state differs from the latest event"
    elif drift == "missing":
        db.session.delete(db.session.scalars(select(ConsentState).where(state)).one())
        expected = "latest event has no state"
    else:  # the state points at an older event of the purpose
        first = db.session.scalars(select(ConsentEvent).where(ConsentEvent.seq == 1)).one()
        db.session.execute(update(ConsentState).where(state).values(event_id=first.id))
        expected = "state differs from the latest event"
    db.session.commit()
    assert not verify_ledger().ok
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 1
    assert f"DRIFT member={member.public_id} purpose=advertising: {expected}" in result.output


def test_a_state_row_without_any_event_is_drift(app, member, runner, policy):
    history(member)
    other = make_member()
    event_id = db.session.scalars(select(ConsentEvent.id)).first()
    db.session.add(ConsentState(member_id=other.id, purpose="advertising", granted=True,
                                event_id=event_id, updated_at=other.created_at))
    db.session.commit()
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 1
    assert f"DRIFT member={other.public_id} purpose=advertising: state has no event" in (
        result.output)


def heads_file(runner, tmp_path, name="heads.json"):
    result = runner.invoke(args=["ledger", "heads"])
    assert result.exit_code == 0, result.output
    path = tmp_path / name
    path.write_text(result.output, encoding="utf-8")
    return path, json.loads(result.output)


def test_signed_heads_prove_nothing_changed_since(app, member, runner, policy, tmp_path):
    history(member)
    path, heads = heads_file(runner, tmp_path)
    assert [row[0] for row in heads["ledger"]] == [member.id]
    assert heads["ledger"][0][1:] == [4, db.session.scalar(
        select(ConsentEvent.hash).where(ConsentEvent.seq == 4))]
    assert any(row[0] == member.id for row in heads["audit"])
    result = runner.invoke(args=["ledger", "verify", "--heads", str(path)])
    assert result.exit_code == 0 and "signed heads: ok" in result.output, result.output
    # The chain goes on: the old statement still holds.
    toggle(member, "advertising", False)
    db.session.commit()
    assert runner.invoke(args=["ledger", "verify", "--heads", str(path)]).exit_code == 0
    # Whoever rewrites a whole chain (here: as "legacy" SHA-256 links, which a plain verify
    # cannot tell from links made before keys) is caught by the archived heads.
    chain = db.session.scalars(
        select(ConsentEvent).where(ConsentEvent.member_id == member.id).order_by(ConsentEvent.seq)
    ).all()
    chain[1].granted = True
    rewrite_chain(ConsentEvent, chain, plain_consent_hash, key_id=LEGACY_KEY_ID)
    result = runner.invoke(args=["ledger", "verify", "--heads", str(path)])
    assert result.exit_code == 1
    assert f"ledger member-row {member.id} seq=4: the link changed since the heads" in (
        result.output)


def test_a_forged_heads_statement_is_refused(app, member, runner, policy, tmp_path):
    history(member)
    path, heads = heads_file(runner, tmp_path)
    heads["ledger"][0][2] = "f" * 64  # heads made to match a rewritten chain
    path.write_text(json.dumps(heads), encoding="utf-8")
    result = runner.invoke(args=["ledger", "verify", "--heads", str(path)])
    assert result.exit_code == 1 and "do not match the signed digest" in result.output
    heads["digest"] = hashlib.sha256(json.dumps(
        {"audit": heads["audit"], "ledger": heads["ledger"]}, sort_keys=True,
        separators=(",", ":")).encode()).hexdigest()
    path.write_text(json.dumps(heads), encoding="utf-8")
    result = runner.invoke(args=["ledger", "verify", "--heads", str(path)])
    assert result.exit_code == 1 and "signature is not valid" in result.output
    path.write_text("not json", encoding="utf-8")
    result = runner.invoke(args=["ledger", "verify", "--heads", str(path)])
    assert result.exit_code == 1 and "not a chain heads statement" in result.output


def test_receipts_and_heads_check_offline_with_the_published_key(
    app, client, member, login_as, runner, policy, tmp_path
):
    response = client.get("/.well-known/consent-ledger-key")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    key = tmp_path / "consent-ledger-key.pem"
    key.write_text(response.get_data(as_text=True), encoding="utf-8")
    login_as(member)
    post(client, "/me/consents/advertising", {"granted": "1"})
    event = db.session.scalars(select(ConsentEvent)).one()
    response = client.get(f"/me/receipts/{event.receipt_id}.json")
    receipt = json.loads(response.get_data(as_text=True))
    assert (receipt["x-hash"], receipt["x-previousHash"], receipt["x-keyId"]) == (
        event.hash, event.prev_hash, event.key_id)
    assert receipt["publicKey"] == key.read_text(encoding="utf-8")
    assert receipt["x-publicKeyUrl"].endswith("/.well-known/consent-ledger-key")
    script = [sys.executable, str(ROOT / "scripts" / "verify_receipt.py")]

    def check(document: dict, *extra: str) -> subprocess.CompletedProcess:
        path = tmp_path / "document.json"
        path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
        return subprocess.run([*script, str(path), *extra], capture_output=True, text=True,
                              check=False, timeout=60)

    result = check(receipt, "--key", str(key))
    assert result.returncode == 0 and "signature valid" in result.stdout, result.stderr
    assert event.hash in result.stdout
    assert check(dict(receipt, **{"x-granted": False}), "--key", str(key)).returncode == 1
    _, heads = heads_file(runner, tmp_path)
    assert check(heads, "--key", str(key)).returncode == 0
    assert check(dict(heads, created_at="2020-01-01T00:00:00+00:00"), "--key",
                 str(key)).returncode == 1


@pytest.mark.parametrize("ledger_key", [None, "dev-only-insecure-ledger-key-0000", "short"])
def test_production_refuses_to_start_without_a_ledger_key(monkeypatch, ledger_key):
    monkeypatch.setenv("CONSENT_CENTER_ENV", "production")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://privacy.example.com")
    monkeypatch.setenv("SECRET_KEY", "x" * 64)
    if ledger_key is None:
        monkeypatch.delenv("LEDGER_KEY", raising=False)
    else:
        monkeypatch.setenv("LEDGER_KEY", ledger_key)
    with pytest.raises(RuntimeError, match="LEDGER_KEY"):
        create_app()


@pytest.mark.parametrize("signing_key", [None, "bm90IGEga2V5", "-----BEGIN PRIVATE KEY-----"])
def test_production_refuses_a_missing_or_unusable_signing_key(monkeypatch, signing_key):
    monkeypatch.setenv("CONSENT_CENTER_ENV", "production")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://privacy.example.com")
    monkeypatch.setenv("SECRET_KEY", "x" * 64)
    monkeypatch.setenv("LEDGER_KEY", "y" * 64)
    if signing_key is None:
        monkeypatch.delenv("LEDGER_SIGNING_KEY", raising=False)
    else:
        monkeypatch.setenv("LEDGER_SIGNING_KEY", signing_key)
    with pytest.raises(RuntimeError, match="LEDGER_SIGNING_KEY"):
        create_app()


def test_the_migration_keeps_old_chains_verifying_and_names_old_subjects(
    app, client, member, runner, policy
):
    """Rows written before the migration: their plain SHA-256 links become sha256-legacy and
    still verify; old contact-form messages get their sender as subject."""
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import text

    from consent_center.models import Notification, NotificationSubject

    history(member)
    page = client.get("/contact").get_data(as_text=True)
    submission = page.split('name="submission_id" type="hidden" value="')[1].split('"')[0]
    post(client, "/contact", {"category": "question", "name": "Old Sender",
                              "email": "old.sender@example.org", "submission_id": submission,
                              "message": "A message from before the upgrade."})
    events = db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.seq)).all()
    audits = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    db.session.remove()
    downgrade(revision="9e2b6c0d4f18")
    try:
        # Re-link every chain as the unkeyed code wrote it.
        for table, rows, digest in (("consent_event", events, plain_consent_hash),
                                    ("audit_event", audits, plain_audit_hash)):
            chains: dict = {}
            for row in sorted(rows, key=lambda r: r.seq):
                chain = getattr(row, "member_id", None) or row.subject_member_id
                row.prev_hash = chains.get(chain, "0" * 64)
                row.hash = chains[chain] = digest(row)
                db.session.execute(
                    text(f"UPDATE {table} SET prev_hash = :p, hash = :h WHERE id = :i"),
                    {"p": row.prev_hash, "h": row.hash, "i": row.id},
                )
        db.session.commit()
        db.session.remove()
    finally:
        upgrade(revision="heads")
    keys = set(db.session.scalars(select(ConsentEvent.key_id))) | set(
        db.session.scalars(select(AuditEvent.key_id)))
    assert keys == {LEGACY_KEY_ID}
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 0 and "4 events predate keyed chains" in result.output
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
    contact_rows = db.session.scalars(
        select(Notification.id).where(Notification.kind.in_(["contact_ack", "contact_message"]))
    ).all()
    named = set(db.session.scalars(select(NotificationSubject.notification_id)))
    assert len(contact_rows) == 2 and set(contact_rows) <= named
