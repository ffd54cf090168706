"""The audit log: hash chains per subject (and one for the system), `flask audit verify`,
the staff page with filters, and the streamed CSV export."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import delete, select, update

from consent_center import clock
from consent_center.extensions import db
from consent_center.models import AuditEvent
from consent_center.models.audit import AUDIT_GENESIS_HASH
from consent_center.services.audit import record_audit, verify_audit_log
from consent_center.services.erasure import erase_member
from tests.conftest import make_member, make_policy, policy_texts
from tests.support.queries import race
from tests.support.staff import local_midnight, make_staff


@pytest.fixture
def staff(app):
    return make_staff(email="auditor@staff.example")


def chain_of(subject_id):
    condition = (
        AuditEvent.subject_member_id.is_(None)
        if subject_id is None
        else AuditEvent.subject_member_id == subject_id
    )
    return list(db.session.scalars(select(AuditEvent).where(condition).order_by(AuditEvent.seq)))


def member_entry(member, purpose: str = "advertising", **details) -> None:
    """An entry in the member's own chain (a consent change is in the ledger, not here)."""
    record_audit("test.member", actor=member, subject=member, purpose=purpose, **details)


def test_each_subject_has_its_own_chain(app, member, staff, policy):
    other = make_member()
    member_entry(member, "advertising", granted=True)
    record_audit("test.system", actor=staff, note="no subject")
    member_entry(other, "advertising", granted=True)
    member_entry(member, "advertising", granted=False)
    record_audit("test.system", actor=None)
    db.session.commit()
    mine = chain_of(member.id)
    assert [e.seq for e in mine] == [1, 2]
    assert mine[0].prev_hash == AUDIT_GENESIS_HASH and mine[1].prev_hash == mine[0].hash
    assert [e.seq for e in chain_of(other.id)] == [1]
    system = chain_of(None)
    assert [e.seq for e in system] == [1, 2] and system[1].prev_hash == system[0].hash
    assert all(e.hash == e.compute_hash() for e in mine + system)
    report = verify_audit_log()
    assert report.ok and report.chains_checked == 3 and report.events_checked == 5


def test_verify_command_detects_tampering(app, member, staff, runner, policy):
    member_entry(member, "advertising", granted=True)
    member_entry(member, "trend_analysis", granted=True)
    record_audit("test.system", actor=staff, count=3)
    db.session.commit()
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "checked 3 entries in 2 chains: ok" in result.output

    first = chain_of(member.id)[0]
    db.session.execute(
        update(AuditEvent)
        .where(AuditEvent.id == first.id)
        .values(details={**first.details, "purpose": "trend_analysis"})
    )
    db.session.commit()
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"BROKEN member-row={member.id} seq=1: content does not match its hash" in result.output


def test_verify_detects_a_removed_entry(app, member, staff, runner, policy):
    for granted in (True, False, True):
        member_entry(member, "advertising", granted=granted)
    db.session.commit()
    db.session.execute(
        delete(AuditEvent).where(AuditEvent.subject_member_id == member.id, AuditEvent.seq == 2)
    )
    db.session.commit()
    report = verify_audit_log()
    assert not report.ok
    assert (member.id, 3, "expected seq 2") in report.broken
    assert (member.id, 3, "previous hash does not match") in report.broken
    assert runner.invoke(args=["audit", "verify"]).exit_code == 1


def test_chains_still_verify_after_erasure(app, member, staff, policy):
    member_entry(member, "advertising", granted=True)
    erase_member(member, actor=staff, reason="test")
    db.session.commit()
    assert [e.action for e in chain_of(member.id)][-1] == "member.erased"
    assert verify_audit_log().ok


# PostgreSQL only (SQLite serialises writers itself, so there is no race to test there).
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_concurrent_writers_never_fork_a_chain(app, member, backend):
    """Two transactions appending to the same chains at once: the second waits for the
    first (row lock / advisory lock), so the chains stay linear and both commit."""
    db.session.commit()
    member_id = member.id

    def writer(n: int, started) -> None:
        from consent_center.models import Member

        subject = db.session.get(Member, member_id)
        started.wait()
        record_audit("race.member", actor=None, subject=subject, n=n)
        record_audit("race.system", actor=None, n=n)
        started.overlap()  # the first holds the chains until the other is under way
        db.session.commit()

    errors = race(app, writer)
    assert not errors, errors
    assert [e.seq for e in chain_of(member_id)] == [1, 2]
    assert [e.seq for e in chain_of(None)] == [1, 2]
    assert verify_audit_log().ok


def seed_log(staff, member):
    """Entries on three days: 1, 2 and 3 March (local), by staff and by the member."""
    for day, action, actor, subject in [
        (1, "policy.draft_created", staff, None),
        (2, "consent.granted", member, member),
        (3, "policy.published", staff, None),
    ]:
        clock.freeze(local_midnight(date(2026, 3, day)) + timedelta(hours=9))
        record_audit(action, actor=actor, subject=subject, formula="=1+1", day=day)
    db.session.commit()


def test_audit_page_filters(client, login_as, staff, member):
    seed_log(staff, member)
    login_as(staff)

    def shown(**query) -> list[str]:
        page = client.get("/staff/audit", query_string=query).get_data(as_text=True)
        actions = ("draft_created", "consent.granted", "policy.published")
        return [a for a in actions if f"{a}</code>" in page]  # rows, not suggestions

    assert shown() == ["draft_created", "consent.granted", "policy.published"]
    assert shown(actor=staff.public_id) == ["draft_created", "policy.published"]
    assert shown(actor="AUDITOR@staff.example") == ["draft_created", "policy.published"]
    assert shown(action="policy.") == ["draft_created", "policy.published"]
    assert shown(action="consent") == ["consent.granted"]
    assert shown(since="2026-03-02") == ["consent.granted", "policy.published"]
    assert shown(since="2026-03-02", until="2026-03-02") == ["consent.granted"]
    assert shown(until="not-a-date") == ["draft_created", "consent.granted", "policy.published"]


def test_audit_page_paginates(client, login_as, staff):
    for n in range(105):
        record_audit("test.bulk", actor=staff, n=n)
    db.session.commit()
    login_as(staff)
    first = client.get("/staff/audit").get_data(as_text=True)
    assert first.count("test.bulk</code>") == 100 and "Older entries" in first
    second = client.get("/staff/audit?page=2").get_data(as_text=True)
    assert second.count("test.bulk</code>") == 5 and "Newer entries" in second


def test_csv_export_is_streamed_filtered_and_audited(client, login_as, staff, member):
    seed_log(staff, member)
    login_as(staff)
    # Buffered: the isolated test client reads the stream inside the request's context.
    response = client.get("/staff/audit.csv?action=policy.", buffered=True)
    assert response.status_code == 200
    assert "Content-Length" not in response.headers  # streamed, not built in memory
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == "attachment; filename=audit-log.csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["action"] for r in rows] == ["policy.draft_created", "policy.published"]
    assert rows[0]["actor"].lstrip("'") == staff.public_id and rows[0]["chain"] == "system"
    assert '"formula": "=1+1"' in rows[0]["details"]  # inside JSON: no leading "="
    assert rows[1]["prev_hash"] == rows[0]["hash"]
    exported = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "audit.exported")
    ).one()
    assert exported.actor_member_id == staff.id and exported.details["action_filter"] == "policy."


def test_csv_cells_cannot_start_a_formula(client, login_as, staff):
    from consent_center.web.staff.audit import _cell

    assert _cell("-abc") == "'-abc" and _cell("=SUM(A1)") == "'=SUM(A1)" and _cell("ok") == "ok"
    assert _cell(None) == ""


def test_policy_publication_is_audited_with_the_actor(client, login_as, staff, app):
    make_policy()
    from consent_center.services.policies import publish_policy

    publish_policy(
        actor=staff,
        texts=policy_texts("x", "s", title="P"),
        effective_at=clock.utcnow() + timedelta(days=8),
        config=app.config,
    )
    db.session.commit()
    actions = [e.action for e in chain_of(None)]
    assert actions == ["policy.draft_created", "policy.published", "notify.policy_notice_enqueued"]
    assert verify_audit_log().ok


def test_consent_changes_come_from_the_ledger_merged_in_time_order(
    client, login_as, staff, member, policy
):
    """A toggle writes no audit entry; the page and the CSV read it from the ledger, between
    the log's entries by time, and filter it like them."""
    from tests.support.api import grant

    seed_log(staff, member)  # 1, 2 and 3 March; the 2 March entry is an old-style copy
    clock.freeze(local_midnight(date(2026, 3, 2)) + timedelta(hours=12))
    audit_before = db.session.scalars(select(AuditEvent)).all()
    event = grant(member, "advertising")
    assert db.session.scalars(select(AuditEvent)).all() == audit_before
    login_as(staff)

    def shown(**query) -> list[str]:
        page = client.get("/staff/audit", query_string=query).get_data(as_text=True)
        return re.findall(r'<td[^>]*><code>([\w.]+)</code></td>', page)

    assert shown()[-4:] == [  # newest first
        "policy.published", "consent.granted", "consent.granted", "policy.draft_created"
    ]  # fmt: skip
    page = client.get("/staff/audit").get_data(as_text=True)
    assert event.receipt_id in page and "Consent ledger" in page
    assert shown(action="consent", actor=staff.public_id) == []
    assert shown(action="consent.", actor=member.public_id) == ["consent.granted"] * 2
    assert shown(until="2026-03-01") == ["policy.draft_created"]
    response = client.get("/staff/audit.csv?action=consent", buffered=True)
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["action"], r["chain"]) for r in rows] == [
        ("consent.granted", "member"), ("consent.granted", "ledger")
    ]  # fmt: skip
    assert rows[1]["hash"] == event.hash and rows[1]["subject"] == member.public_id
    assert json.loads(rows[1]["details"]) == {
        "purpose": "advertising", "method": "form", "receipt": event.receipt_id
    }  # fmt: skip
