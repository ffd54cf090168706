"""Outbox and erasure benchmarks on PostgreSQL (run by `make bench`, after bench/run.py).

1. Fan-out: publish a policy version to N members (default 100,000) and time the set-wise
   enqueue, committed; then time a bare `INSERT ... SELECT` writing the same rows into the
   same table, committed (target: the fan-out at >= 0.5 of the bare statement's speed).
2. Delivery: two `flask notify worker` processes deliver M of those messages (default
   10,000) to a local SMTP server, as a ratio to a plain smtplib loop sending the same
   messages to the same server in the same run (target: >= 0.5).
3. Erasure: erase a member with 10,000 ledger events and 1,000 notifications (target: well
   under a second), then check the ledger still verifies.

Prints one line per measurement: `bench <name> <value> ...`. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG_SERVER = os.environ.get("BENCH_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")
DB_NAME = "consent_center_bench_outbox"
DB_URL = f"{PG_SERVER}/{DB_NAME}"
RESULTS = ROOT / "bench" / "results"


def log(message: str) -> None:
    print(f"[outbox-bench] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(**extra) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith(("MAIL_", "TWILIO_"))}
    values.update(
        CONSENT_CENTER_ENV="development",
        FLASK_APP="consent_center:create_app",
        DATABASE_URL=DB_URL,
        SECRET_KEY="outbox-bench-" + uuid.uuid4().hex,
        PUBLIC_BASE_URL="http://127.0.0.1",
        RATELIMIT_ENABLED="false",
    )
    values.update({k: str(v) for k, v in extra.items()})
    return values


def fresh_database() -> None:
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    flask = [sys.executable, "-m", "flask"]
    for args in (["db", "upgrade"], ["demo", "seed"]):
        subprocess.run(flask + args, env=env(), cwd=ROOT, check=True, capture_output=True)


def seed_members(n: int) -> None:
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO member (public_id, name, email, birth_date, locale, role, status,
                                email_verified_at, created_at, updated_at, notify_email,
                                notify_sms, policy_seen_number, confirm_guardian_choices)
            SELECT md5('m' || g), 'Bench Member ' || g, 'bench' || g || '@example.org',
                   DATE '1990-01-01', CASE WHEN g %% 2 = 0 THEN 'en' ELSE 'zh_Hans_CN' END,
                   'member', 'active', now(), now(), now(), true, false, 1, false
            FROM generate_series(1, %s) AS g
            """,
            (n,),
        )


def time_fan_out(app) -> tuple[float, int]:
    from consent_center.domain import Locale
    from consent_center.extensions import db
    from consent_center.models import FanOut
    from consent_center.models.policy import PolicyText
    from consent_center.services.policies import publish_policy

    with app.app_context():
        started = time.perf_counter()
        version = publish_policy(
            actor=None,
            texts={
                Locale.EN: PolicyText(
                    Locale.EN, "Privacy policy", "# Privacy policy\n\nBenchmark text.\n",
                    "A benchmark version.",
                ),
                Locale.ZH: PolicyText(
                    Locale.ZH, "隐私政策", "# 隐私政策\n\n基准测试文本。\n", "基准测试版本。"
                ),
            },
            effective_at=datetime.now(UTC) + timedelta(days=8),
            config=app.config,
        )
        db.session.commit()
        elapsed = time.perf_counter() - started
        fan = (
            db.session.query(FanOut)
            .filter(FanOut.cause == f"policy_version:{version.number}")
            .one()
        )
        return elapsed, fan.total


NOTIFICATION_COLUMNS = (
    "public_id, member_id, channel, kind, dedupe_key, recipient, locale, content_id,"
    " fan_out_id, status, attempts, next_attempt_at, created_at"
)


def time_bare_insert_select() -> tuple[float, int]:
    """The fan-out's floor: its rows written again into the same table by one bare
    `INSERT ... SELECT` (fresh random public ids and their own dedupe keys, as the fan-out
    makes them), committed, on a plain psycopg connection; then removed again (untimed)."""
    with psycopg.connect(DB_URL) as conn:
        started = time.perf_counter()
        cursor = conn.execute(
            f"""
            INSERT INTO notification ({NOTIFICATION_COLUMNS})
            SELECT encode(uuid_send(gen_random_uuid()), 'hex'), member_id, channel, kind,
                   'bare:' || dedupe_key, recipient, locale, content_id, fan_out_id, status,
                   attempts, next_attempt_at, created_at
            FROM notification
            """
        )
        rows = cursor.rowcount
        conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("DELETE FROM notification WHERE dedupe_key LIKE 'bare:%%'")
        conn.commit()
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE notification")
    return elapsed, rows


def keep_only(m: int) -> int:
    """Leave M pending email rows; park the rest as sent so the workers deliver exactly M."""
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        conn.execute(
            """UPDATE notification SET status = 'sent' WHERE status = 'pending' AND id NOT IN
               (SELECT id FROM notification WHERE status = 'pending' AND channel = 'email'
                ORDER BY id LIMIT %s)""",
            (m,),
        )
        return conn.execute(
            "SELECT count(*) FROM notification WHERE status = 'pending'"
        ).fetchone()[0]


def sample_messages(m: int) -> list[EmailMessage]:
    """The same messages the workers send: the fan-out's content to its recipients."""
    with psycopg.connect(DB_URL) as conn:
        rows = conn.execute(
            """SELECT n.recipient, n.public_id, c.subject, c.body_text, c.body_html
               FROM notification n JOIN notification_content c ON c.id = n.content_id
               WHERE n.status = 'pending' ORDER BY n.id LIMIT %s""",
            (m,),
        ).fetchall()
    messages = []
    for recipient, public_id, subject, text, html in rows:
        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = subject, "privacy@localhost", recipient
        msg["Message-ID"] = f"<{public_id}-baseline@localhost>"
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        messages.append(msg)
    return messages


def smtplib_loop(port: int, messages: list[EmailMessage]) -> float:
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        for msg in messages:
            smtp.send_message(msg)
    return time.perf_counter() - started


def remaining_count() -> int:
    """Messages still to deliver (an index-only count, so polling costs the workers little)."""
    with psycopg.connect(DB_URL) as conn:
        return conn.execute("SELECT count(*) FROM notification WHERE status IN "
                            "('pending', 'sending')").fetchone()[0]


def workers_deliver(port: int, m: int, workers: int) -> float:
    worker_env = env(
        MAIL_SERVER="127.0.0.1", MAIL_PORT=port, NOTIFY_BATCH_SIZE=200, NOTIFY_POLL_SECONDS=0.05
    )
    procs = []
    started = time.perf_counter()
    try:
        for _ in range(workers):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "flask", "notify", "worker"],
                    env=worker_env,
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        deadline = started + 600
        while remaining_count() > 0:
            if time.perf_counter() > deadline:
                raise RuntimeError("delivery did not finish in 10 minutes")
            time.sleep(0.2)
        return time.perf_counter() - started
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def time_erasure(app, events: int, notifications: int) -> tuple[float, bool]:
    from consent_center.extensions import db
    from consent_center.ledger_keys import current_key_id
    from consent_center.models import ConsentEvent, Member, Notification
    from consent_center.models.consent import GENESIS_HASH, chain_hash
    from consent_center.services.consents import verify_ledger
    from consent_center.services.erasure import erase_member

    with app.app_context():
        member = Member(
            name="Erasure Bench",
            email="erase.me@example.org",
            locale="en",
            birth_date=datetime(1990, 1, 1).date(),
            status="active",
        )
        db.session.add(member)
        db.session.flush()
        prev, now, key_id = GENESIS_HASH, datetime.now(UTC), current_key_id()
        rows = []
        for seq in range(1, events + 1):
            fields = dict(
                member_id=member.id,
                seq=seq,
                receipt_id=str(uuid.uuid4()),
                purpose="advertising" if seq % 2 else "trend_analysis",
                granted=bool(seq % 3),
                policy_version_id=None,
                actor="member",
                actor_member_id=member.id,
                method="form",
            )
            created = now + timedelta(microseconds=seq)
            digest = chain_hash(key_id=key_id, prev_hash=prev, created_at=created, **fields)
            rows.append(
                dict(fields, created_at=created, prev_hash=prev, hash=digest, key_id=key_id)
            )
            prev = digest
        db.session.execute(ConsentEvent.__table__.insert(), rows)
        db.session.execute(
            Notification.__table__.insert(),
            [
                dict(
                    public_id=hashlib.md5(f"n{i}".encode()).hexdigest(),
                    member_id=member.id,
                    channel="email",
                    kind="contact_ack",
                    dedupe_key=f"erase-bench:{i}",
                    recipient=member.email,
                    subject="Hello",
                    body_text="Hello Erasure Bench",
                    locale="en",
                    status="sent",
                    attempts=1,
                    next_attempt_at=now,
                    created_at=now,
                )
                for i in range(notifications)
            ],
        )
        db.session.commit()
        started = time.perf_counter()
        erase_member(db.session.get(Member, member.id), actor=None, reason="benchmark")
        db.session.commit()
        elapsed = time.perf_counter() - started
        ok = verify_ledger(member.id).ok
        return elapsed, ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--deliver", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    os.environ.update(env())
    from consent_center import create_app

    log("fresh database, schema by migrations")
    fresh_database()
    log(f"seeding {args.members} members")
    seed_members(args.members)
    app = create_app(
        "development",
        SQLALCHEMY_DATABASE_URI=DB_URL.replace("postgresql://", "postgresql+psycopg://"),
        DEV_MAILBOX=False,
    )
    enqueue_s, total = time_fan_out(app)
    log(f"fan-out wrote {total} notifications in {enqueue_s:.3f} s")
    bare_s, bare_rows = time_bare_insert_select()
    log(f"baseline: a bare INSERT ... SELECT of the same {bare_rows} rows in {bare_s:.3f} s")
    fanout_ratio = bare_s / enqueue_s

    port = free_port()
    sink = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-c",
            "aiosmtpd.handlers.Sink",
            "-l",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        pending = keep_only(args.deliver)
        messages = sample_messages(pending)
        log(f"baseline: smtplib loop, {len(messages)} messages, one connection")
        baseline_s = smtplib_loop(port, messages)
        log(f"workers: {args.workers} x flask notify worker")
        workers_s = workers_deliver(port, pending, args.workers)
    finally:
        sink.terminate()
        sink.wait(timeout=10)
    erase_s, ledger_ok = time_erasure(app, 10_000, 1_000)

    baseline_rate = len(messages) / baseline_s
    worker_rate = pending / workers_s
    results = {
        "fanout_enqueue_seconds": round(enqueue_s, 3),
        "fanout_rows": total,
        "bare_insert_select_seconds": round(bare_s, 3),
        "fanout_ratio_to_bare_insert_select": round(fanout_ratio, 3),
        "load_average": os.getloadavg(),
        "smtplib_msgs_per_s": round(baseline_rate, 1),
        "workers_msgs_per_s": round(worker_rate, 1),
        "delivery_ratio": round(worker_rate / baseline_rate, 2),
        "erasure_seconds": round(erase_s, 3),
        "ledger_verifies_after_erasure": ledger_ok,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "outbox.json").write_text(json.dumps(results, indent=2))
    print(
        f"bench fanout_enqueue {enqueue_s:.3f}s rows={total} bare_insert_select={bare_s:.3f}s"
        f" ratio={fanout_ratio:.2f} target=>=0.5"
        f" ({'met' if fanout_ratio >= 0.5 else 'MISSED'})"
    )
    print(f"bench smtplib_baseline {baseline_rate:.1f}msg/s ratio=1.00")
    print(
        f"bench worker_delivery {worker_rate:.1f}msg/s workers={args.workers} "
        f"ratio={worker_rate / baseline_rate:.2f} target=>=0.5"
    )
    print(
        f"bench erasure {erase_s * 1000:.0f}ms events=10000 notifications=1000 "
        f"ledger_ok={ledger_ok}"
    )
    return 0 if ledger_ok else 1


if __name__ == "__main__":
    sys.exit(main())
