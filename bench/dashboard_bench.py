"""Benchmark: the staff dashboard (/staff) on a large PostgreSQL database.

    .venv/bin/python bench/dashboard_bench.py [--members 100000] [--requests 20] [--keep]

1. Makes a fresh PostgreSQL database `consent_center_dashboard_bench` (its own, so it never
   touches bench/run.py's), builds the schema with the migrations, and seeds set-wise, in a
   few INSERT ... SELECT statements: N members (registered over the last 400 days; 1 % erased,
   1 % minors awaiting a guardian), one to three consent events each, their current state,
   a policy version that changed trend analysis 20 days ago (so the "asked again" rule is
   exercised), 50,000 messages over the last 10 days and 500 open deletion requests.
   Ledger hashes are placeholders: the dashboard never reads them (do not run `flask ledger
   verify` on this database).
2. Renders /staff through the Flask test client (production config, a signed-in staff
   session): warm-up, then R timed requests; the same for a hello-world Flask app in the same
   process as a baseline. Also times the dashboard's figures alone and counts the SQL
   statements per request.
3. Prints one `bench dashboard ...` line and writes bench/results/dashboard-latest.json.

Exits 1 when a request fails.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

try:  # share the PostgreSQL server setting with bench/run.py
    from bench.run import PG_SERVER
except Exception:  # noqa: BLE001 - run.py is optional here
    PG_SERVER = os.environ.get("BENCH_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")

DB_NAME = "consent_center_dashboard_bench"
DB_URL = f"{PG_SERVER}/{DB_NAME}"
RESULTS = ROOT / "bench" / "results"


def log(message: str) -> None:
    print(message, flush=True)


def create_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def make_app():
    os.environ.update(
        CONSENT_CENTER_ENV="production",
        DATABASE_URL=DB_URL,
        SECRET_KEY=secrets.token_hex(32),
        PUBLIC_BASE_URL="https://127.0.0.1",
        MAIL_SERVER="127.0.0.1",  # production needs one; the dashboard sends nothing
        SMS_ENABLED="false",
        RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379/14",
        LEDGER_KEY=secrets.token_hex(32),
        LEDGER_SIGNING_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        RATELIMIT_ENABLED="false",
    )
    from consent_center import create_app

    return create_app("production")


def migrate(app) -> None:
    from flask_migrate import upgrade

    with app.app_context():
        upgrade(revision="heads")  # parallel branches may not be merged yet


def _extras(conn, table: str, given: str) -> tuple[str, str, dict]:
    """Values for NOT NULL columns without a database default that other features added
    (bench/run.py's helper, when it has one)."""
    try:
        from bench.run import required_extras
    except Exception:  # noqa: BLE001
        return "", "", {}
    return required_extras(conn, table, given)


def seed(app, n: int) -> dict:
    """Everything set-wise; returns row counts and the seconds it took."""
    import psycopg

    started = time.monotonic()
    with app.app_context():
        from consent_center.cli import seed_demo

        seed_demo()  # policy version 1 and a demo staff account
    with psycopg.connect(DB_URL) as conn:
        conn.execute(
            "UPDATE policy_version SET published_at = now() - interval '400 days',"
            " effective_at = now() - interval '400 days' WHERE number = 1"
        )
        given = (
            "public_id, number, title, body_md, summary, changed_purposes, published_at,"
            " effective_at, created_at"
        )
        conn.execute(
            f"""
            INSERT INTO policy_version ({given})
            SELECT md5(random()::text), 2, title, body_md || E'\\n\\nTrend analysis changes.',
                   'Trend analysis changes', 'trend_analysis', now() - interval '50 days',
                   now() - interval '20 days', now() - interval '50 days'
            FROM policy_version WHERE number = 1
            """
        )
        given = (
            "public_id, name, email, birth_date, locale, role, status, email_verified_at,"
            " created_at, updated_at, erased_at, notify_email, notify_sms, policy_seen_number"
        )
        extra_cols, extra_vals, extra = _extras(conn, "member", given)
        conn.execute(
            f"""
            INSERT INTO member ({given}{extra_cols})
            SELECT md5(random()::text || g::text),
                   CASE WHEN mod(g, 100) = 0 THEN NULL ELSE 'Dash Member ' || g END,
                   CASE WHEN mod(g, 100) = 0 THEN NULL ELSE 'dash-' || g || '@example.com' END,
                   CASE WHEN mod(g, 100) = 1 THEN date '2016-01-01' + mod(g, 300)
                        ELSE date '1970-01-01' + mod(g * 37, 12000) END,
                   CASE WHEN mod(g, 5) = 0 THEN 'zh_Hans_CN' ELSE 'en' END,
                   'member',
                   CASE WHEN mod(g, 100) = 0 THEN 'erased'
                        WHEN mod(g, 100) = 1 THEN 'awaiting_guardian' ELSE 'active' END,
                   now() - (mod(g * 7919, 400)) * interval '1 day',
                   now() - (mod(g * 7919, 400)) * interval '1 day' - interval '1 hour',
                   now(),
                   CASE WHEN mod(g, 100) = 0 THEN now() - (mod(g, 60)) * interval '1 day' END,
                   true, mod(g, 10) = 0, 1{extra_vals}
            FROM generate_series(1, %(n)s) AS g
            """,
            {"n": n, **extra},
        )
        versions = dict(conn.execute("SELECT number, id FROM policy_version").fetchall())
        given = (
            "receipt_id, member_id, seq, purpose, granted, policy_version_id, actor,"
            " actor_member_id, method, created_at, prev_hash, hash"
        )
        extra_cols, extra_vals, extra = _extras(conn, "consent_event", given)
        conn.execute(
            f"""
            INSERT INTO consent_event ({given}{extra_cols})
            SELECT gen_random_uuid()::text, e.member_id, e.seq, e.purpose, e.granted,
                   CASE WHEN e.at >= now() - interval '20 days' THEN %(v2)s ELSE %(v1)s END,
                   'member', e.member_id, 'form', e.at, repeat('0', 64), repeat('0', 64)
                   {extra_vals}
            FROM (
                SELECT m.id AS member_id, s.seq,
                       CASE WHEN mod(m.id + s.seq, 2) = 0 THEN 'trend_analysis'
                            ELSE 'advertising' END AS purpose,
                       mod(m.id * 31 + s.seq * 17, 3) <> 0 AS granted,
                       least(now() - interval '1 minute',
                             m.created_at + s.seq * (mod(m.id, 45) + 1) * interval '1 day')
                           AS at
                FROM member m
                CROSS JOIN LATERAL generate_series(1, 1 + mod(m.id, 3)) AS s(seq)
                WHERE m.role = 'member'
            ) AS e
            """,
            {"v1": versions[1], "v2": versions[2], **extra},
        )
        given = "member_id, purpose, granted, event_id, policy_version_id, updated_at"
        extra_cols, extra_vals, extra = _extras(conn, "consent_state", given)
        conn.execute(
            f"""
            INSERT INTO consent_state ({given}{extra_cols})
            SELECT DISTINCT ON (member_id, purpose)
                   member_id, purpose, granted, id, policy_version_id, created_at{extra_vals}
            FROM consent_event ORDER BY member_id, purpose, seq DESC
            """,
            extra,
        )
        given = (
            "public_id, member_id, channel, kind, dedupe_key, recipient, locale, status,"
            " attempts, next_attempt_at, created_at"
        )
        extra_cols, extra_vals, extra = _extras(conn, "notification", given)
        conn.execute(
            f"""
            INSERT INTO notification ({given}{extra_cols})
            SELECT md5(random()::text || g::text), m.id,
                   CASE WHEN mod(g, 4) = 0 THEN 'sms' ELSE 'email' END, 'policy_notice',
                   'bench:' || g, m.email, m.locale,
                   (ARRAY['pending', 'sent', 'delivered', 'failed', 'dead'])[1 + mod(g, 5)],
                   mod(g, 3), now(), now() - (mod(g, 10)) * interval '1 day'{extra_vals}
            FROM generate_series(1, 50000) AS g
            JOIN member m ON m.id = 1 + mod(g, %(n)s)
            """,
            {"n": n, **extra},
        )
        given = "public_id, member_id, requested_by_id, status, received_at, due_at"
        extra_cols, extra_vals, extra = _extras(conn, "deletion_request", given)
        conn.execute(
            f"""
            INSERT INTO deletion_request ({given}{extra_cols})
            SELECT md5(random()::text || m.id::text), m.id, m.id,
                   CASE WHEN mod(m.id, 2) = 0 THEN 'received' ELSE 'in_review' END,
                   now() - (mod(m.id, 30)) * interval '1 day',
                   now() + (10 - mod(m.id, 30)) * interval '1 day'{extra_vals}
            FROM member m WHERE m.status = 'active' ORDER BY m.id LIMIT 500
            """,
            extra,
        )
        conn.commit()
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("member", "consent_event", "consent_state", "notification")
        }
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    counts["seconds"] = round(time.monotonic() - started, 1)
    return counts


def time_requests(client, path: str, n: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        response = client.get(path)
        if response.status_code != 200:
            raise SystemExit(f"GET {path}: {response.status_code}\n{response.data[:500]!r}")
    timings = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(path)
        response.get_data()
        timings.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(f"GET {path}: {response.status_code}")
    return timings


def summary(timings: list[float]) -> dict:
    ordered = sorted(timings)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[max(int(len(ordered) * 0.95) - 1, 0)] * 1000, 1),
        "min_ms": round(ordered[0] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def hello_app():
    from flask import Flask

    hello = Flask("hello")

    @hello.get("/")
    def index():
        return "Hello, World!"

    return hello


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="reuse the seeded database")
    args = parser.parse_args(argv)

    app = make_app()
    if not args.keep:
        log(f"creating {DB_NAME} and seeding {args.members} members ...")
        create_database()
        migrate(app)
        counts = seed(app, args.members)
        log(f"  seeded {counts}")
    else:
        counts = {}

    from sqlalchemy import event, select

    from consent_center.extensions import db
    from consent_center.models import Member
    from consent_center.services.dashboard import dashboard

    with app.app_context():
        staff = db.session.scalars(select(Member).where(Member.role == "staff")).first()
        from consent_center.services.sessions import open_session

        staff_key = open_session(staff)  # the server-side session the cookie names
        db.session.commit()
        started = time.perf_counter()
        figures = dashboard()
        figures_ms = round((time.perf_counter() - started) * 1000, 1)
        members_now = figures.current_members
        db.session.remove()

    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = staff_key
        session["_fresh"] = True

    statements: list[str] = []
    listener = lambda *a: statements.append(a[2])  # noqa: E731
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", listener)
        client.get("/staff")
        event.remove(db.engine, "before_cursor_execute", listener)

    staff_timings = time_requests(client, "/staff", args.requests)
    hello_timings = time_requests(hello_app().test_client(), "/", max(args.requests, 200))
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "members": members_now,
        "seed": counts,
        "queries_per_request": len(statements),
        "figures_only_ms": figures_ms,
        "dashboard": summary(staff_timings),
        "hello": summary(hello_timings),
    }
    result["ratio_median"] = round(
        result["dashboard"]["median_ms"] / max(result["hello"]["median_ms"], 0.001), 1
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dashboard-latest.json").write_text(json.dumps(result, indent=2) + "\n")
    d, h = result["dashboard"], result["hello"]
    log(
        f"bench dashboard members={members_now} queries={len(statements)} "
        f"median={d['median_ms']}ms p95={d['p95_ms']}ms min={d['min_ms']}ms "
        f"figures-only={figures_ms}ms | hello median={h['median_ms']}ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
