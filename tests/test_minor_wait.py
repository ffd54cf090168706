"""A minor's account whose guardian never answers is not kept forever: after
GUARDIAN_WAIT_DAYS it is erased and the child is told."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from consent_center import clock
from consent_center.extensions import db
from consent_center.models import GuardianLink, Member, Notification
from tests.conftest import post
from tests.support.outbox import mailbox
from tests.test_auth import latest_code
from tests.test_guardians import register_minor


def _waiting_minor(client) -> Member:
    """A minor who signed in (so the unverified-account purge does not apply) and waits."""
    minor = register_minor(client)
    post(client, "/sign-in/code", {"code": latest_code(minor.email)})
    db.session.refresh(minor)
    assert minor.status == "awaiting_guardian" and minor.email_verified_at is not None
    return minor


def test_an_unanswered_minor_is_erased_after_the_wait_and_told(client, app, runner):
    clock.freeze(clock.utcnow())
    start = clock.utcnow()
    minor = _waiting_minor(client)
    clock.freeze(start + timedelta(days=30) - timedelta(seconds=1))
    result = runner.invoke(args=["minors", "erase-unanswered"])
    assert result.exit_code == 0 and result.output.startswith("0 unanswered")
    db.session.expire_all()
    assert db.session.get(Member, minor.id).status == "awaiting_guardian"
    clock.freeze(start + timedelta(days=30, seconds=1))
    result = runner.invoke(args=["minors", "erase-unanswered"])
    assert result.exit_code == 0 and result.output.startswith("1 unanswered minor account")
    db.session.expire_all()
    gone = db.session.get(Member, minor.id)
    assert gone.status == "erased" and gone.email is None and gone.name != "Little Lee"
    link = db.session.scalars(select(GuardianLink)).one()
    assert link.contact is None and link.token_hash is None
    told = [m for m in mailbox() if m["kind"] == "guardian_wait_expired"]
    assert [m["to"] for m in told] == ["little.lee@example.org"]
    assert "within 30 days" in told[0]["text"]
    # Once sent, nothing of the address is left in the outbox.
    row = db.session.scalars(select(Notification).where(
        Notification.kind == "guardian_wait_expired")).one()
    assert row.member_id is None and row.recipient is None


def test_the_wait_is_configurable_and_the_worker_runs_it_daily(client, app):
    from consent_center.notify.worker import DailyTasks

    app.config["GUARDIAN_WAIT_DAYS"] = 3
    clock.freeze(clock.utcnow())
    start = clock.utcnow()
    minor = _waiting_minor(client)
    clock.freeze(start + timedelta(days=3, seconds=1))
    assert DailyTasks().run_if_due()["minors erase-unanswered"] == 1
    db.session.expire_all()
    assert db.session.get(Member, minor.id).status == "erased"
