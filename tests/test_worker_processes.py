"""Real worker processes: SIGKILL mid-batch loses nothing; two workers never send twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from consent_center.extensions import db
from consent_center.models import Notification
from consent_center.services.notifications import enqueue_notification
from tests.conftest import make_member

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


def start_worker(env: dict, command: str = "worker") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "notify", command],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


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
