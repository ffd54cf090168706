"""Every retention promise of the data inventory is kept by `flask retention run`: the clock
moves to just before each limit (nothing is touched) and just after it (exactly the rows past
it go, and the command prints how many)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from consent_center import clock
from consent_center.domain import Actor, Channel, Method, NotificationStatus
from consent_center.extensions import db
from consent_center.models import (
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
from consent_center.models.types import new_public_id
from consent_center.services.consents import set_consent
from consent_center.services.erasure import erase_member
from tests.conftest import make_member
from tests.support.writes import nothing_written

T = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def run(runner) -> dict[str, int]:
    result = runner.invoke(args=["retention", "run"])
    assert result.exit_code == 0, result.output
    return {
        name: int(count)
        for name, count in (line.split(": ") for line in result.output.splitlines())
    }


def nothing_removed(runner) -> None:
    with nothing_written():
        counts = run(runner)
    assert set(counts.values()) == {0}, counts


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def code(member: Member, expires_at: datetime) -> OneTimeCode:
    row = OneTimeCode(
        purpose="sign_in",
        channel=Channel.EMAIL,
        identifier_digest="d" * 64,
        member_id=member.id,
        code_hash="h" * 64,
        created_at=expires_at - timedelta(minutes=10),
        expires_at=expires_at,
    )
    db.session.add(row)
    return row


def test_code_rows_go_24_hours_after_they_expire(app, runner):
    clock.freeze(T)
    member = make_member()
    old, used, fresh = code(member, T), code(member, T), code(member, T + timedelta(hours=1))
    used.consumed_at = T - timedelta(minutes=5)
    db.session.commit()
    ids = old.id, used.id, fresh.id
    clock.freeze(T + timedelta(hours=24))
    nothing_removed(runner)
    clock.freeze(T + timedelta(hours=24) + SECOND)
    assert run(runner)["codes"] == 2
    db.session.expire_all()
    assert db.session.scalars(select(OneTimeCode.id).where(OneTimeCode.id.in_(ids))).all() == [
        fresh.id
    ]
    clock.freeze(T + timedelta(hours=25) + SECOND)
    assert run(runner)["codes"] == 1 and count(OneTimeCode) == 0


def message(member: Member, status: str, *, sent_at: datetime | None) -> Notification:
    row = Notification(
        member_id=member.id,
        channel=Channel.EMAIL,
        kind="policy_notice",
        dedupe_key=new_public_id(),
        recipient=member.email,
        subject="Our policy changes",
        body_text="Dear member",
        body_html="<p>Dear member</p>",
        status=status,
        provider_id="<id@example.org>" if sent_at else None,
        last_error=None if sent_at else "mailbox unavailable",
        created_at=T,
        sent_at=sent_at,
    )
    db.session.add(row)
    return row


def test_message_text_and_address_go_after_outbox_retention_days(app, runner):
    app.config["OUTBOX_RETENTION_DAYS"] = 90
    clock.freeze(T)
    member = make_member()
    sent = message(member, NotificationStatus.DELIVERED, sent_at=T + timedelta(hours=1))
    failed = message(member, NotificationStatus.DEAD, sent_at=None)
    waiting = message(member, NotificationStatus.PENDING, sent_at=None)
    db.session.commit()
    clock.freeze(T + timedelta(days=90))
    nothing_removed(runner)
    clock.freeze(T + timedelta(days=90) + SECOND)
    assert run(runner)["messages"] == 1
    db.session.expire_all()
    assert failed.recipient is None and failed.body_text is None and failed.last_error is None
    assert sent.recipient == member.email  # sent an hour after it was written
    clock.freeze(T + timedelta(days=90, hours=1) + SECOND)
    assert run(runner)["messages"] == 1
    db.session.expire_all()
    for column in ("recipient", "subject", "body_text", "body_html", "provider_id"):
        assert getattr(sent, column) is None, column
    # What the message was and what became of it stays; a message still to send is whole.
    assert (sent.kind, sent.status) == ("policy_notice", "delivered")
    assert sent.sent_at == T + timedelta(hours=1)
    assert waiting.recipient == member.email and waiting.body_text == "Dear member"
    assert run(runner)["messages"] == 0


def test_ended_sessions_go(app, runner):
    clock.freeze(T)
    member = make_member()
    ending = MemberSession(key_digest="a" * 64, member_id=member.id, expires_at=T + SECOND * 3600)
    later = MemberSession(key_digest="b" * 64, member_id=member.id, expires_at=T + SECOND * 7200)
    db.session.add_all([ending, later])
    db.session.commit()
    clock.freeze(T + timedelta(hours=1) - SECOND)
    nothing_removed(runner)
    clock.freeze(T + timedelta(hours=1) + SECOND)
    assert run(runner)["sessions"] == 1
    assert db.session.scalars(select(MemberSession.key_digest)).all() == ["b" * 64]


def test_erasure_notices_stop_naming_the_member_without_another_erasure(app, runner):
    app.config["API_ERASURE_NOTICE_DAYS"] = 30
    clock.freeze(T)
    erased = make_member()
    former = erased.public_id
    erase_member(erased, actor=None, reason="test")
    db.session.commit()
    notice = db.session.scalars(select(ChangeEvent).where(ChangeEvent.member_id == erased.id)).one()
    assert notice.former_public_id == former
    clock.freeze(T + timedelta(days=30) - SECOND)
    nothing_removed(runner)
    clock.freeze(T + timedelta(days=30) + SECOND)
    assert run(runner)["erasure-notices"] == 1
    db.session.expire_all()
    assert notice.former_public_id is None


def history(member: Member) -> None:
    for granted in (True, False, True):
        set_consent(member, "advertising", granted, actor=Actor.MEMBER, method=Method.FORM,
                    actor_member=member)
    db.session.commit()


def heads(runner, tmp_path):
    result = runner.invoke(args=["ledger", "heads"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "heads.json"
    path.write_text(result.output, encoding="utf-8")
    return path, json.loads(result.output)


def verified(runner, *args: str) -> str:
    for command in (["ledger", "verify", *args], ["audit", "verify"]):
        result = runner.invoke(args=command)
        assert result.exit_code == 0, result.output
    return runner.invoke(args=["ledger", "verify", *args]).output


def test_ledger_and_audit_chain_kept_three_years_after_erasure_then_closed(
    app, runner, policy, tmp_path
):
    app.config["LEDGER_RETENTION_YEARS"] = 3
    clock.freeze(T)
    leaver, stayer = make_member(), make_member()
    history(leaver)
    history(stayer)
    db.session.add(DeletionRequest(member_id=leaver.id, requested_by_id=leaver.id,
                                   status="completed", received_at=T,
                                   due_at=T + timedelta(days=15)))
    to_leaver = message(leaver, NotificationStatus.SENT, sent_at=T)
    db.session.flush()
    db.session.add(NotificationSubject(notification_id=to_leaver.id,
                                       subject_key=f"member:{leaver.id}"))
    message(stayer, NotificationStatus.SENT, sent_at=T)
    # The leaver was a child whose guardian is the stayer, and the guardian of another child.
    ward = make_member()
    db.session.add_all([
        GuardianLink(minor_id=leaver.id, guardian_id=stayer.id, status="approved"),
        GuardianLink(minor_id=ward.id, guardian_id=leaver.id, status="approved"),
    ])
    db.session.commit()
    erase_member(leaver, actor=None, reason="deletion_request")
    db.session.commit()
    clock.freeze(T + timedelta(days=1))
    later = make_member()  # left a day later: still within its three years
    history(later)
    erase_member(later, actor=None, reason="deletion_request")
    db.session.commit()
    clock.freeze(T)
    leaver_id, stayer_id, later_id = leaver.id, stayer.id, later.id
    last_hash = db.session.scalars(
        select(ConsentEvent.hash).where(ConsentEvent.member_id == leaver_id)
        .order_by(ConsentEvent.seq.desc())
    ).first()
    path, statement = heads(runner, tmp_path)
    assert [leaver_id, 3, last_hash] in statement["ledger"]
    before = {
        model.__name__: count(model, column == stayer_id)
        for model, column in (
            (ConsentEvent, ConsentEvent.member_id),
            (ConsentState, ConsentState.member_id),
            (AuditEvent, AuditEvent.subject_member_id),
        )
    }

    clock.freeze(datetime(2030, 3, 1, 12, 0, tzinfo=UTC) - SECOND)  # three years, less 1 s
    # The erasure notice and the stayer's message are past their own, shorter, limits.
    assert run(runner) == {"codes": 0, "messages": 1, "sessions": 0, "erasure-notices": 2,
                           "closed-chains": 0}
    nothing_removed(runner)
    clock.freeze(datetime(2030, 3, 1, 12, 0, tzinfo=UTC) + SECOND)
    assert run(runner)["closed-chains"] == 1
    db.session.expire_all()
    for model, column in (
        (ConsentEvent, ConsentEvent.member_id),
        (ConsentState, ConsentState.member_id),
        (AuditEvent, AuditEvent.subject_member_id),
        (DeletionRequest, DeletionRequest.member_id),
        (ChangeEvent, ChangeEvent.member_id),
        (Notification, Notification.member_id),
        (GuardianLink, GuardianLink.minor_id),
    ):
        assert count(model, column == leaver_id) == 0, model.__name__
    assert count(NotificationSubject) == 0
    assert count(ConsentEvent, ConsentEvent.member_id == later_id) == 3
    assert count(AuditEvent, AuditEvent.subject_member_id == later_id) > 0
    # The ward's record of their guardian, and the other member's message, stay.
    assert count(GuardianLink, GuardianLink.minor_id == ward.id) == 1
    assert count(Notification, Notification.member_id == stayer_id) == 1
    tombstone = db.session.get(Member, leaver_id)
    assert tombstone.status == "erased" and tombstone.public_id.startswith("erased-")
    # The other member's records are untouched.
    assert before == {
        model.__name__: count(model, column == stayer_id)
        for model, column in (
            (ConsentEvent, ConsentEvent.member_id),
            (ConsentState, ConsentState.member_id),
            (AuditEvent, AuditEvent.subject_member_id),
        )
    }
    closed = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "retention.chain_closed")
    ).one()
    assert closed.subject_member_id is None
    assert closed.details["member_row"] == leaver_id
    assert closed.details["ledger_head"] == [3, last_hash]
    # The chains still verify, and the archived statement's heads are explained, not missing.
    output = verified(runner, "--heads", str(path))
    assert f"CLOSED ledger member-row {leaver_id} seq=3: removed by retention" in output
    assert "signed heads: ok" in output
    assert run(runner)["closed-chains"] == 0  # nothing left to close


def test_a_chain_removed_without_retention_still_fails_the_heads(app, runner, policy, tmp_path):
    clock.freeze(T)
    member = make_member()
    history(member)
    path, _ = heads(runner, tmp_path)
    for model in (ConsentState, ChangeEvent, ConsentEvent):  # as someone writing the database
        db.session.execute(model.__table__.delete())
    db.session.commit()
    result = runner.invoke(args=["ledger", "verify", "--heads", str(path)])
    assert result.exit_code == 1
    assert f"ledger member-row {member.id} seq=3: the link is gone" in result.output


def test_the_worker_applies_retention_daily(app):
    from consent_center.notify.worker import DailyTasks

    clock.freeze(T)
    member = make_member()
    code(member, T)
    db.session.commit()
    clock.freeze(T + timedelta(days=2))
    assert DailyTasks().run_if_due()["retention run"] == 1
    assert count(OneTimeCode) == 0


def test_the_member_pages_state_the_configured_limits(app, client, login_as, request):
    app.config["OUTBOX_RETENTION_DAYS"] = 45
    app.config["LEDGER_RETENTION_YEARS"] = 5
    member = make_member()
    login_as(member)
    # Each part of the data states its retention in its field list (opened from /me).
    page = "".join(
        client.get(f"/me/data/{table}").get_data(as_text=True)
        for table in ("notification", "consent_event", "one_time_code")
    )
    assert "Deleted 45 days after the message was sent" in page
    assert "5 years after the erasure it is deleted" in page
    assert "Deleted by our daily clean-up once 24 hours have passed since it expired" in page
    page = client.get("/me/delete").get_data(as_text=True)
    assert "5 years after the erasure we delete these too" in page
    member.locale = "zh_Hans_CN"
    db.session.commit()
    page = "".join(
        client.get(f"/me/data/{table}").get_data(as_text=True)
        for table in ("notification", "consent_event")
    )
    assert "在消息发送（或放弃发送）45天后删除" in page
    assert "删除数据5年后" in page
    assert "删除数据5年后，我们也会删除上述记录" in client.get("/me/delete").get_data(as_text=True)


def test_one_command_runs_every_daily_task_for_cron(app, runner):
    from consent_center.notify.worker import DAILY_TASKS

    clock.freeze(T)
    code(make_member(), T)
    db.session.commit()
    clock.freeze(T + timedelta(days=2))
    result = runner.invoke(args=["notify", "daily"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split(": ")[0] for line in lines] == [name for name, _ in DAILY_TASKS]
    assert "retention run: 1" in lines and count(OneTimeCode) == 0
