"""Real worker processes: SIGKILL mid-batch loses nothing; two workers never send twice, even
through receivers slower than the lease; a code is sent the moment its request commits (NOTIFY
on PostgreSQL, a short poll on SQLite)."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from consent_center import clock
from consent_center.extensions import db
from consent_center.models import Notification
from consent_center.services.notifications import enqueue_notification
from consent_center.services.outgoing_webhooks import add_webhook
from tests.conftest import make_member, post
from tests.support.api import grant, webhook_receiver

ROOT = Path(__file__).resolve().parent.parent


def worker_env(app, smtp, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "MAIL_"))}
    env.update(
        CONSENT_CENTER_ENV="development",
        FLASK_APP="consent_center:create_app",
        DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        SECRET_KEY="worker-test-secret-key-that-is-long-enough",
        MAIL_SERVER=smtp.host,
        MAIL_PORT=str(smtp.port),
        MAIL_TIMEOUT="5",
        NOTIFY_LEASE_SECONDS="2",
        NOTIFY_POLL_SECONDS="0.2",
        NOTIFY_BATCH_SIZE="50",
        NOTIFY_BACKOFF_BASE_SECONDS="1",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_worker(env: dict, command: str = "worker", log: Path | None = None) -> subprocess.Popen:
    """A worker process; its log goes to `log` when given (else to a pipe)."""
    target = log.open("wb") if log else subprocess.PIPE
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "flask", "notify", command],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=target,
        )
    finally:
        if log:
            target.close()  # the child has its own copy


def enqueue_many(n: int) -> None:
    member = make_member()
    for i in range(n):
        enqueue_notification(
            member=member,
            channel="email",
            kind="contact_ack",
            dedupe_key=f"proc:{i}",
            recipient=f"r{i}@example.org",
            locale="en",
            context={"sender_name": "X", "message": f"m{i}"},
        )
    db.session.commit()


def wait_until_all_sent(n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.expire_all()
        sent = db.session.scalar(
            select(func.count()).select_from(Notification).where(Notification.status == "sent")
        )
        db.session.rollback()
        if sent == n:
            return
        time.sleep(0.1)
    raise AssertionError(f"only {sent} of {n} sent")


def wait_until_received(receiver, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(receiver.received) >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"only {len(receiver.received)} of {n} webhook deliveries arrived")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stderr:
        proc.stderr.close()


def test_worker_killed_mid_batch_loses_nothing(app, smtp):
    """Each notice arrives; a retry after the crash reuses its Message-ID, so the one message
    that may have been in flight at the kill is recognisable as the same message."""
    n = 30
    enqueue_many(n)
    smtp.hold_after(10)  # the eleventh message waits in DATA: the worker is mid-batch
    first = start_worker(worker_env(app, smtp))
    try:
        assert smtp.held.wait(timeout=60), "the worker never reached its eleventh message"
        first.send_signal(signal.SIGKILL)  # no chance to clean up or release its lease
        first.wait(timeout=10)
    finally:
        stop(first)
    assert len(smtp.messages) == 10
    smtp.release()
    second = start_worker(worker_env(app, smtp))
    try:
        wait_until_all_sent(n)
    finally:
        stop(second)
    ids = Counter(m.message["Message-ID"] for m in smtp.messages)
    expected = {f"<{p}@localhost>" for p in db.session.scalars(select(Notification.public_id))}
    assert set(ids) == expected  # every notice delivered
    assert len(smtp.messages) - len(ids) <= 1  # at most the one in flight, same Message-ID


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_workers_never_send_the_same_message(app, smtp, backend):
    n = 200
    enqueue_many(n)
    # The first message waits until another connection sends too: both workers have claimed
    # rows and are sending at the same moment (one worker sends on one connection at a time).
    smtp.meet(2)
    # Leases outlast the wait for the second worker to start, however slow the machine.
    env = worker_env(app, smtp, NOTIFY_BATCH_SIZE=20, NOTIFY_LEASE_SECONDS=300)
    workers = [start_worker(env), start_worker(env)]
    try:
        wait_until_all_sent(n, timeout=120)
    finally:
        for w in workers:
            stop(w)
    assert smtp.met.is_set(), "the two workers never sent at the same time"
    recipients = Counter(m.rcpt_tos[0] for m in smtp.messages)
    assert len(recipients) == n and max(recipients.values()) == 1


def test_drain_command_delivers_and_exits(app, smtp, runner):
    enqueue_many(3)
    proc = subprocess.run(
        [sys.executable, "-m", "flask", "notify", "drain"],
        env=worker_env(app, smtp),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "sent=3" in proc.stdout
    assert len(smtp.wait_for(3)) == 3


def wait_for_log(proc: subprocess.Popen, needle: str, timeout: float = 30) -> str:
    """Read the worker's log until a line containing `needle`; returns that line."""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stderr, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=deadline - time.monotonic()):
                break
            line = proc.stderr.readline().decode()
            if not line:
                raise AssertionError(f"the worker exited ({proc.wait()}) before {needle!r}")
            if needle in line:
                return line
    raise AssertionError(f"no {needle!r} in the worker's log")


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_the_commit_of_a_sign_in_wakes_a_listening_worker(app, client, member, smtp, backend):
    """The worker polls once an hour here, so only the NOTIFY sent by the sign-in's commit can
    wake it: the code arrives and signs the member in."""
    env = worker_env(app, smtp, NOTIFY_POLL_SECONDS=3600, SECRET_KEY=app.config["SECRET_KEY"])
    worker = start_worker(env)
    try:
        # Logged once the worker has listened, drained the (empty) outbox and gone to sleep.
        assert "woken by NOTIFY" in wait_for_log(worker, "notification worker ready")
        assert post(client, "/sign-in", {"identifier": member.email}).status_code == 303
        [received] = smtp.wait_for(1, timeout=30)
    finally:
        stop(worker)
    assert received.rcpt_tos == [member.email]
    code = re.search(r"\b(\d{6})\b", received.message.get_body(("plain",)).get_content())
    assert post(client, "/sign-in/code", {"code": code.group(1)}).status_code == 303
    assert client.get("/me").status_code == 200


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_without_notify_the_worker_looks_for_codes_between_polls(app, client, member, smtp):
    """SQLite has no NOTIFY: the worker checks for a code every NOTIFY_SECRET_POLL_SECONDS
    while its full poll (an hour here) sleeps."""
    env = worker_env(
        app,
        smtp,
        NOTIFY_POLL_SECONDS=3600,
        NOTIFY_SECRET_POLL_SECONDS=0.05,
        SECRET_KEY=app.config["SECRET_KEY"],
    )
    worker = start_worker(env)
    try:
        assert "codes checked every 0.05s" in wait_for_log(worker, "notification worker ready")
        post(client, "/sign-in", {"identifier": member.email})
        [received] = smtp.wait_for(1, timeout=30)
    finally:
        stop(worker)
    assert received.rcpt_tos == [member.email]


def test_a_code_does_not_wait_for_a_bulk_batch_in_flight(app, client, member, smtp):
    """The worker is sending one batch of 30 notices (50 ms each) when a member asks for a
    code: the code lane sends it before the batch ends."""
    enqueue_many(30)
    smtp.data_delay = 0.05
    env = worker_env(
        app,
        smtp,
        NOTIFY_POLL_SECONDS=3600,
        NOTIFY_SECRET_POLL_SECONDS=0.05,
        NOTIFY_BATCH_SIZE=50,
        SECRET_KEY=app.config["SECRET_KEY"],
    )
    worker = start_worker(env)
    try:
        smtp.wait_for(1, timeout=30)  # the batch is being sent
        post(client, "/sign-in", {"identifier": member.email})
        received = smtp.wait_for(31, timeout=60)
    finally:
        stop(worker)
    order = [m.rcpt_tos[0] for m in received]
    assert order.index(member.email) < 30, "the code waited for the whole batch"


# Each receiver takes this long per message: longer than the lease the workers get. (The lease
# is long enough that a heartbeat late by a second on a busy machine still holds it.)
LEASE_SECONDS = 2
SLOW_SECONDS = 2.5


def reported_counts(log: Path) -> Counter:
    """What a worker said it did, summed over its rounds ("delivered: lost=1, sent=2")."""
    totals: Counter = Counter()
    for line in re.findall(r"delivered: (.*)", log.read_text(encoding="utf-8")):
        for key, value in (part.split("=") for part in line.split(", ")):
            totals[key] += int(value)
    return totals


def test_two_workers_deliver_once_through_receivers_slower_than_the_lease(
    app, smtp, twilio, policy, tmp_path
):
    """Two workers and an SMTP server, the Twilio stand-in and a webhook receiver that each
    answer slower than the lease: every message arrives exactly once at its receiver, and
    the workers' reported counts add up to those deliveries."""
    with webhook_receiver() as hooks:
        add_webhook(hooks.url, ("consent.changed",))
        db.session.commit()
        members = [
            make_member(phone=f"+861380013800{i}", phone_verified_at=clock.utcnow())
            for i in range(2)
        ]
        for i, member in enumerate(members):
            enqueue_notification(
                member=member,
                channel="email",
                kind="contact_ack",
                dedupe_key=f"slow-email:{i}",
                recipient=member.email,
                locale="en",
                context={"sender_name": "X", "message": f"m{i}"},
            )
            enqueue_notification(
                member=member,
                channel="sms",
                kind="policy_notice",
                dedupe_key=f"slow-sms:{i}",
                recipient=member.phone,
                locale="en",
                context={"number": 2, "effective_at": clock.utcnow()},
            )
            grant(member, "advertising")  # one webhook delivery per member, from the feed
        db.session.commit()
        n = db.session.scalar(select(func.count()).select_from(Notification))
        assert n == 4  # the webhook deliveries are not outbox rows
        smtp.data_delay = SLOW_SECONDS
        twilio.hang_next(SLOW_SECONDS, times=2)
        hooks.delay = SLOW_SECONDS
        env = worker_env(
            app,
            smtp,
            NOTIFY_LEASE_SECONDS=LEASE_SECONDS,
            MAIL_TIMEOUT=10,
            WEBHOOK_TIMEOUT=10,
            TWILIO_ACCOUNT_SID=twilio.account_sid,
            TWILIO_AUTH_TOKEN=twilio.auth_token,
            TWILIO_FROM_NUMBER="+15005550006",
            TWILIO_API_BASE_URL=twilio.base_url,
            TWILIO_TIMEOUT=10,
        )
        logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
        workers = [start_worker(env, log=log) for log in logs]
        settled = True
        try:
            wait_until_all_sent(n, timeout=60)
            wait_until_received(hooks, 2, timeout=60)
        except AssertionError:
            settled = False  # the receivers' counts below say why
        finally:
            for w in workers:
                stop(w)
    emails = Counter(m.rcpt_tos[0] for m in smtp.messages)
    texts = Counter(m["to"] for m in twilio.messages)
    events = Counter(r.headers["X-Consent-Event-Id"] for r in hooks.received)
    assert emails == Counter(m.email for m in members)
    assert texts == Counter(m.phone for m in members)
    assert len(events) == 2 and set(events.values()) == {1}
    reported = sum((reported_counts(log) for log in logs), Counter())
    assert reported["sent"] == n == emails.total() + texts.total()
    assert reported["webhook sent"] == events.total()
    assert settled
