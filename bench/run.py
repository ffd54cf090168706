"""Benchmark harness: Consent Center under gunicorn, driven by wrk, against a Flask hello world.

    .venv/bin/python bench/run.py [--duration 10] [--members 2000] [--connections 32] [--only NAME]

What it does (see bench/README.md for what the numbers mean):

1. Makes a fresh PostgreSQL database `consent_center_bench`, builds the schema with
   `flask db upgrade`, seeds the policy with `flask demo seed`, inserts N members set-wise and
   a few consent events each: a sample through the real `set_consent` service, the rest as
   plain SQL rows chained with the model's own `chain_hash` (so `flask ledger verify` passes).
2. Writes one signed-in session cookie and CSRF token per member, made the way sign-in makes
   them (same SECRET_KEY, `_user_id`, `_fresh`, `_id`, the CSRF secret), without signing in.
3. Serves bench/hello.py and then the app (wsgi:app, production config) with gunicorn sync
   workers on 127.0.0.1, and drives each with wrk and a Lua script that picks a random member
   per request: hello, me, toggle, hello again. The baseline is the mean of the two hellos.
4. After the toggle run checks that the ledger and the current state agree for every member
   and purpose (one SQL query) and that `flask ledger verify` exits 0.
5. Prints one `bench <name> <requests/s> p99=<ms> ratio=<r>` line per measurement and writes
   bench/results/latest.json. Exits 1 when a run had errors or a check failed.

All load stays on 127.0.0.1 and every run is bounded in time. Every process it starts is
stopped on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import platform
import random
import re
import runpy
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
BIN = Path(sys.executable).parent  # the venv's bin/, where flask and gunicorn live
DB_NAME = "consent_center_bench"
PG_SERVER = os.environ.get("BENCH_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")
ADMIN_URL = f"{PG_SERVER}/postgres"
DB_URL = f"{PG_SERVER}/{DB_NAME}"
SCENARIOS = ("hello", "me", "toggle")
OPTIONAL = ("trend_analysis", "advertising")

# Every server (hello world and the app alike) runs under the project's own production settings,
# gunicorn.conf.py, so the ratios are fair; GUNICORN_WORKER_CLASS, GUNICORN_WORKERS and
# GUNICORN_THREADS in the environment (or --worker-class, --workers, --gthreads) change them
# for every server of a run. One wrk thread is plenty for 32 connections and leaves more CPU to
# the server (bench/README.md). wrk keeps its connections alive when the server lets it.
GUNICORN_CONF = ROOT / "gunicorn.conf.py"
GUNICORN_WORKERS = None  # gunicorn.conf.py's
WRK_THREADS = 1

TARGETS = {"me": 0.07, "toggle": 0.06}


def server_settings() -> str:
    """The gunicorn settings every server of this run gets, in words: the worker class that
    gunicorn runs (a "sync" worker with threads > 1 runs as gthread)."""
    from gunicorn.config import Config

    spec = runpy.run_path(str(GUNICORN_CONF))
    config = Config()
    for name in ("worker_class", "workers", "threads", "keepalive"):
        config.set(name, spec[name])
    worker = config.worker_class_str
    threads = f" x {config.threads} threads" if worker == "gthread" else ""
    alive = f", keepalive {config.keepalive} s" if worker != "sync" else ""
    return f"{worker}, {config.workers} workers{threads}{alive}"


# --- processes --------------------------------------------------------------------------

_children: list[subprocess.Popen] = []


def _on_sigterm(signum, frame):  # turn `kill` into the same clean-up path as Ctrl-C
    raise KeyboardInterrupt


def spawn(cmd: list[str], **kwargs) -> subprocess.Popen:
    """Start a child in its own session (so Ctrl-C reaches only us) and remember it."""
    proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
    _children.append(proc)
    return proc


def stop(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM (gunicorn stops its workers gracefully), then SIGKILL the process group."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # its own group: start_new_session
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass
    if proc in _children:
        _children.remove(proc)


def stop_all() -> None:
    for proc in list(reversed(_children)):
        stop(proc)


def log(message: str) -> None:
    print(message, flush=True)


class BenchError(RuntimeError):
    """A failed step: the run stops, cleans up and exits 1."""


# --- environment ------------------------------------------------------------------------


def app_env(secret_key: str) -> dict[str, str]:
    """The environment of every app process: production config, the bench database."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLASK_", "CONSENT_CENTER_", "SQLALCHEMY_")) and k != "DATABASE_URL"
    }
    env.update(production_settings(secret_key))
    env.update(FLASK_APP="consent_center:create_app", PYTHONUNBUFFERED="1")
    return env


def production_settings(secret_key: str) -> dict[str, str]:
    """What production refuses to start without (config.py), set for a local run: no mail or
    SMS is sent by the benchmarked requests, and limits are counted in the local Redis."""
    return {
        "CONSENT_CENTER_ENV": "production",
        "SECRET_KEY": secret_key,
        # The ledger's keys live outside the database: fresh ones per run.
        "LEDGER_KEY": secrets.token_hex(32),
        "LEDGER_SIGNING_KEY": base64.b64encode(os.urandom(32)).decode(),
        "PUBLIC_BASE_URL": "https://127.0.0.1",
        "MAIL_SERVER": "127.0.0.1",
        "SMS_ENABLED": "false",
        "RATELIMIT_STORAGE_URI": os.environ.get(
            "BENCH_RATELIMIT_STORAGE_URI", "redis://127.0.0.1:6379/14"
        ),
        "DATABASE_URL": DB_URL,
    }


def flask_cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(BIN / "flask"), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    if check and proc.returncode != 0:
        raise BenchError(
            f"`flask {' '.join(args)}` exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
        )
    return proc


VERIFIERS = ("ledger", "audit")  # `flask <name> verify`: the consent ledger, the audit log


def verify_chains(env: dict[str, str]) -> dict[str, dict]:
    """Run every `flask <name> verify` this version of the app has; exit 0 means intact."""
    checked = {}
    for name in VERIFIERS:
        proc = flask_cli(env, name, "verify", check=False)
        if proc.returncode == 2 and "No such command" in proc.stderr:
            continue
        checked[name] = {
            "exit": proc.returncode,
            "output": proc.stdout.strip(),
            "errors": proc.stderr.strip()[-2000:],
        }
    return checked


def migrate(env: dict[str, str]) -> None:
    """`flask db upgrade`; with several heads (branches not merged yet) say so and apply all."""
    proc = flask_cli(env, "db", "upgrade", check=False)
    if proc.returncode != 0 and "Multiple head revisions" in proc.stdout + proc.stderr:
        log("  note: the migrations have several heads (merge them); applying `upgrade heads`")
        proc = flask_cli(env, "db", "upgrade", "heads", check=False)
    if proc.returncode != 0:
        raise BenchError(
            f"`flask db upgrade` exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
        )


# --- database ---------------------------------------------------------------------------


def create_database() -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def consent_plan(rng: random.Random) -> list[tuple[str, bool, str]]:
    """A member's history: opt-ins at registration, then a few changes of mind."""
    plan, state = [], dict.fromkeys(OPTIONAL, False)
    for purpose in OPTIONAL:
        if rng.random() < 0.5:
            plan.append((purpose, True, "registration"))
            state[purpose] = True
    for _ in range(rng.randint(1 if not plan else 0, 3)):
        purpose = rng.choice(OPTIONAL)
        state[purpose] = not state[purpose]
        plan.append((purpose, state[purpose], rng.choice(("form", "htmx"))))
    return plan


def required_extras(conn, table: str, given: str) -> tuple[str, str, dict]:
    """Values for NOT NULL columns, added to the schema since this file was written, that have
    no database default: the model's scalar default. Returns (", col, ...", ", %(p)s, ...",
    params) to append to an INSERT's column and value lists; fails clearly when it can't.
    """
    import consent_center.models  # noqa: F401  (registers every table on the metadata)
    from consent_center.extensions import db

    given_names = {c.strip() for c in given.split(",")}
    missing = [
        name
        for (name,) in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s"
            " AND is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO'",
            (table,),
        )
        if name not in given_names
    ]
    columns, values, params = "", "", {}
    for name in missing:
        column = db.metadata.tables[table].c.get(name)
        default = column.default if column is not None else None
        if default is None or not default.is_scalar:
            raise BenchError(
                f"bench/run.py does not fill {table}.{name} (NOT NULL, no default): add it"
            )
        columns += f", {name}"
        values += f", %(extra_{name})s"
        params[f"extra_{name}"] = default.arg
    return columns, values, params


def copy_rows(conn, table: str, rows: list[dict]) -> None:
    """COPY rows (dicts with the same keys) into `table`, plus any required_extras()."""
    if not rows:
        return
    columns = ", ".join(rows[0])
    extra_cols, _values, extra = required_extras(conn, table, columns)
    with conn.cursor() as cur:
        with cur.copy(f"COPY {table} ({columns}{extra_cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((*row.values(), *extra.values()))


@dataclass
class SeedReport:
    members: int = 0
    via_service: int = 0
    events: int = 0
    seconds: float = 0.0


def seed_members(app, n: int, service_sample: int, rng: random.Random) -> SeedReport:
    """N members in one INSERT ... SELECT generate_series, and their consent history.

    The first `service_sample` members get theirs through the real service
    (`consent_center.services.consents.set_consent`); everyone else's is computed here with the
    model's own `chain_hash` and COPYed in, then consent_state and each member's chain head
    (`member.ledger_seq`, `ledger_hash`) are derived from those events set-wise, as the
    service would have written them (a consent change writes no audit entry).
    """
    import psycopg
    from sqlalchemy import select

    from consent_center.domain import Actor
    from consent_center.extensions import db
    from consent_center.ledger_keys import current_key_id
    from consent_center.models import ConsentEvent, Member
    from consent_center.models.consent import GENESIS_HASH
    from consent_center.services.consents import set_consent

    started = time.monotonic()
    report = SeedReport()
    with psycopg.connect(DB_URL, autocommit=False) as conn:
        policy_id = conn.execute("SELECT max(id) FROM policy_version").fetchone()[0]
        if policy_id is None:
            raise BenchError("no policy version after `flask demo seed`")
        joined = datetime.now(UTC) - timedelta(days=60)
        # 16 random bytes, URL-safe base64 without padding: the shape of new_public_id().
        given = (
            "public_id, name, email, birth_date, locale, role, status, email_verified_at,"
            " created_at, updated_at, notify_email, notify_sms"
        )
        extra_cols, extra_vals, extra = required_extras(conn, "member", given)
        conn.execute(
            f"""
            INSERT INTO member ({given}{extra_cols})
            SELECT rtrim(translate(encode(decode(md5(random()::text || clock_timestamp()::text
                                                     || g::text), 'hex'), 'base64'),
                                   '+/', '-_'), '='),
                   'Bench Member ' || g, 'bench-member-' || g || '@example.com',
                   date '1970-01-01' + (g * 37) %% 12000, 'en', 'member', 'active',
                   %(joined)s, %(joined)s, %(joined)s, true, false{extra_vals}
            FROM generate_series(1, %(n)s) AS g
            """,
            {"n": n, "joined": joined, **extra},
        )
        members = conn.execute(
            "SELECT id, public_id FROM member WHERE email LIKE 'bench-member-%%' ORDER BY id"
        ).fetchall()
        conn.commit()
        report.members = len(members)

        sample_ids = [m[0] for m in members[:service_sample]]
        direct = members[service_sample:]
        # Each event is built as a (transient) model instance so that its hash comes from
        # the model's own compute_hash(), chained per member.
        # The ledger key comes from the app's configuration (never from the database).
        with app.app_context():
            key_id = current_key_id()
            events = []
            for member_id, _public_id in direct:
                prev = GENESIS_HASH
                when = joined + timedelta(seconds=rng.randint(0, 86_400))
                for seq, (purpose, granted, method) in enumerate(consent_plan(rng), start=1):
                    when += timedelta(
                        minutes=rng.randint(1, 20_000), microseconds=rng.randint(0, 999_999)
                    )
                    event = dict(
                        key_id=key_id,
                        member_id=member_id,
                        seq=seq,
                        receipt_id=str(uuid.uuid4()),
                        purpose=purpose,
                        granted=granted,
                        policy_version_id=policy_id,
                        actor=Actor.MEMBER.value,
                        actor_member_id=member_id,
                        method=method,
                        created_at=when,
                        prev_hash=prev,
                    )
                    event["hash"] = prev = ConsentEvent(**event).compute_hash()
                    events.append(event)
        copy_rows(conn, "consent_event", events)
        rows = events
        with conn.cursor() as cur:
            direct_ids = [m[0] for m in direct]
            given = "member_id, purpose, granted, event_id, policy_version_id, updated_at"
            extra_cols, extra_vals, extra = required_extras(conn, "consent_state", given)
            cur.execute(
                f"""
                INSERT INTO consent_state ({given}{extra_cols})
                SELECT DISTINCT ON (member_id, purpose)
                       member_id, purpose, granted, id, policy_version_id, created_at{extra_vals}
                FROM consent_event WHERE member_id = ANY(%(ids)s)
                ORDER BY member_id, purpose, seq DESC
                """,
                {"ids": direct_ids, **extra},
            )
            # The chain head on each member row, as set_consent keeps it.
            cur.execute(
                """
                UPDATE member SET ledger_seq = last.seq, ledger_hash = last.hash
                FROM (SELECT DISTINCT ON (member_id) member_id, seq, hash FROM consent_event
                      WHERE member_id = ANY(%(ids)s) ORDER BY member_id, seq DESC) AS last
                WHERE member.id = last.member_id
                """,
                {"ids": direct_ids},
            )
        conn.commit()
        report.events = len(rows)

    with app.app_context():
        for member in db.session.scalars(select(Member).where(Member.id.in_(sample_ids))):
            for purpose, granted, method in consent_plan(rng):
                set_consent(
                    member,
                    purpose,
                    granted,
                    actor=Actor.MEMBER,
                    method=method,
                    actor_member=member,
                )
                report.events += 1
            db.session.commit()
            report.via_service += 1
        db.session.remove()
    report.seconds = time.monotonic() - started
    return report


def settle_database() -> None:
    """`VACUUM (ANALYZE)` and a checkpoint once the seed and the sessions are written: the
    measured runs start from a database as a running one is (statistics known, the seed's
    dead row versions gone, hint bits set), instead of paying for that inside the first
    measured run (autovacuum and the first reads of each row did, and the first of several
    rounds ran slower than the rest)."""
    import psycopg

    with psycopg.connect(DB_URL, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")


def write_credentials(app, path: Path) -> int:
    """One signed-in session per member, serialised exactly as Flask would send it.

    Each member gets a server-side session row (services/sessions.py; valid a day, for the
    run). The session holds what `login_user` puts there (`_user_id` = the session's key,
    `_fresh`, and `_id`,
    the session-protection hash of the client's address and user agent: 127.0.0.1 and none, as
    wrk sends) plus the CSRF secret; the token is `generate_csrf()`'s. A fresh request context
    (and so a fresh `g`) per member keeps generate_csrf from reusing the previous token.
    """
    import psycopg
    from flask import request, session
    from flask_wtf.csrf import generate_csrf

    with psycopg.connect(DB_URL) as conn:
        members = conn.execute(
            "SELECT id, public_id FROM member WHERE email LIKE 'bench-member-%%' ORDER BY id"
        ).fetchall()
        keys = {member_id: secrets.token_urlsafe(32) for member_id, _ in members}
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO member_session (key_digest, member_id, created_at, expires_at)"
                " VALUES (%s, %s, now(), now() + interval '1 day')",
                [(hashlib.sha256(k.encode()).hexdigest(), m) for m, k in keys.items()],
            )
    serializer = app.session_interface.get_signing_serializer(app)
    lines = []
    for member_id, public_id in members:
        with app.test_request_context("/me", environ_base={"REMOTE_ADDR": "127.0.0.1"}):
            assert request.headers.get("User-Agent") is None
            session["_user_id"] = keys[member_id]
            session["_fresh"] = True
            session["_id"] = app.login_manager._session_identifier_generator()
            session["csrf_token"] = hashlib.sha1(os.urandom(64)).hexdigest()
            token = generate_csrf()
            cookie = serializer.dumps(dict(session))
        lines.append(f"{public_id}\t{cookie}\t{token}\n")
    path.write_text("".join(lines))
    return len(lines)


INVARIANT_SQL = """
WITH latest AS (
    SELECT DISTINCT ON (member_id, purpose) member_id, purpose, granted, id
    FROM consent_event
    ORDER BY member_id, purpose, seq DESC
)
SELECT count(*) AS pairs,
       count(*) FILTER (WHERE s.member_id IS NULL) AS state_missing,
       count(*) FILTER (WHERE l.member_id IS NULL) AS state_without_event,
       count(*) FILTER (WHERE l.granted IS DISTINCT FROM s.granted) AS granted_differs,
       count(*) FILTER (WHERE l.id IS DISTINCT FROM s.event_id) AS points_elsewhere
FROM latest l FULL JOIN consent_state s ON s.member_id = l.member_id AND s.purpose = l.purpose
"""


def ledger_state_agree() -> dict:
    """For every member and purpose: the state row is the latest event's answer (one query)."""
    import psycopg

    with psycopg.connect(DB_URL) as conn:
        cur = conn.execute(INVARIANT_SQL)
        row = dict(zip([c.name for c in cur.description], cur.fetchone(), strict=True))
    row["ok"] = all(v == 0 for k, v in row.items() if k != "pairs")
    return row


def settled_count(table: str, quiet: float = 0.5, limit: float = 30) -> int:
    """The row count once it has stopped changing for `quiet` seconds: wrk has exited, but the
    server is still finishing the requests that were in flight (up to one per connection)."""
    deadline, last = time.monotonic() + limit, count_rows(table)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = count_rows(table)
        if now == last:
            return now
        last = now
    raise BenchError(f"{table} kept growing for {limit:g} s after wrk stopped")


def count_rows(table: str) -> int:
    import psycopg

    with psycopg.connect(DB_URL) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608


# --- gunicorn ---------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    port: int
    log_path: Path

    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def gunicorn_cmd(app_spec: str, chdir: Path, workers: int | None, log_path: Path) -> list[str]:
    return [
        str(BIN / "gunicorn"),
        "--config", str(GUNICORN_CONF),
        *(["--workers", str(workers)] if workers else []),
        "--bind", "127.0.0.1:0",
        "--chdir", str(chdir),
        "--error-logfile", str(log_path),
        "--log-level", "info",
        "--capture-output",
        "--no-control-socket",
        app_spec,
    ]  # fmt: skip


def start_server(
    name: str,
    app_spec: str,
    chdir: Path,
    env: dict,
    workers: int | None,
    health: str,
    logs: Path,
    ok_statuses: tuple[int, ...] = (200,),
) -> Server:
    log_path = logs / f"gunicorn-{name}.log"
    log_path.unlink(missing_ok=True)
    proc = spawn(
        gunicorn_cmd(app_spec, chdir, workers, log_path),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline, port = time.monotonic() + 60, None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"gunicorn ({name}) exited {proc.returncode}:\n{tail(log_path)}")
        if port is None and log_path.exists():
            found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", log_path.read_text())
            port = int(found.group(1)) if found else None
        if port is not None:
            try:
                status, _headers, _body = http_request(port, "GET", health)
                if status in ok_statuses:
                    return Server(name, proc, port, log_path)
            except OSError:
                pass
        time.sleep(0.2)
    raise BenchError(f"gunicorn ({name}) did not answer {health} in 60 s:\n{tail(log_path)}")


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def http_request(port: int, method: str, path: str, headers=None, body=None):
    """One request without a User-Agent (as wrk sends it); returns (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


def read_credentials(path: Path) -> list[tuple[str, str, str]]:
    return [tuple(line.split("\t")) for line in path.read_text().splitlines()]


def preflight(server: Server, creds: Path) -> None:
    """A few real requests before the load: the cookies sign in and the toggle answers 200.

    Also that the session is left alone (no Set-Cookie): a session the app had to rewrite on
    every request would mean the cookie is not what sign-in makes.
    """
    sample = random.Random(7).sample(read_credentials(creds), 3)
    for public_id, cookie, token in sample:
        status, headers, body = http_request(
            server.port, "GET", "/me", {"Cookie": f"cc_session={cookie}"}
        )
        if status != 200 or b"Bench Member" not in body:
            raise BenchError(
                f"preflight GET /me for {public_id}: {status}\n{body[:300]!r}\n"
                f"--- {server.log_path} (tail)\n{tail(server.log_path, 25)}"
            )
        if any(k.lower() == "set-cookie" for k, _ in headers):
            raise BenchError(f"preflight GET /me rewrote the session: {headers}")
        status, headers, body = http_request(
            server.port,
            "POST",
            "/me/consents/advertising",
            {
                "Cookie": f"cc_session={cookie}",
                "X-CSRFToken": token,
                "HX-Request": "true",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            "granted=1",
        )
        if status != 200 or b'id="consent-advertising"' not in body:
            raise BenchError(
                f"preflight toggle for {public_id}: {status}\n{body[:300]!r}\n"
                f"--- {server.log_path} (tail)\n{tail(server.log_path, 25)}"
            )


# --- wrk --------------------------------------------------------------------------------


@dataclass
class WrkResult:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    seconds: float
    non_2xx_3xx: int  # as wrk counts them (status >= 400)
    bad_status: int  # as the Lua script counts them (anything but 2xx)
    first_bad_status: int
    socket_errors: dict = field(default_factory=dict)
    raw: str = ""
    # CPU time of the server's processes (gunicorn's master and workers) per completed
    # request over the measured run, in ms: unlike requests/s, it does not depend on how fast
    # the machine happens to run hello world, so it compares two servers measured minutes
    # apart. None where /proc cannot be read.
    server_cpu_ms: float | None = None

    @property
    def errors(self) -> int:
        return self.non_2xx_3xx + self.bad_status + sum(self.socket_errors.values())


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text).groups()
    return float(number) * _UNITS_MS[unit]


def parse_wrk(name: str, out: str) -> WrkResult:
    def grab(pattern: str, default=None):
        found = re.search(pattern, out, re.MULTILINE)
        return found.groups() if found else default

    rps = grab(r"^Requests/sec:\s+([\d.]+)")
    p50 = grab(r"^\s+50%\s+(\S+)")
    p99 = grab(r"^\s+99%\s+(\S+)")
    total = grab(r"^\s+(\d+) requests in ([\d.]+)(\w+),")
    if not (rps and p50 and p99 and total):
        raise BenchError(f"could not read wrk's output:\n{out}")
    socket = grab(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
    status = grab(r"^BENCH_STATUS ok=(\d+) bad=(\d+) first_bad_status=(\d+)", ("0", "0", "0"))
    return WrkResult(
        name=name,
        rps=float(rps[0]),
        p50_ms=_ms(p50[0]),
        p99_ms=_ms(p99[0]),
        requests=int(total[0]),
        seconds=_ms(total[1] + total[2]) / 1000,
        non_2xx_3xx=int((grab(r"Non-2xx or 3xx responses: (\d+)") or ("0",))[0]),
        bad_status=int(status[1]),
        first_bad_status=int(status[2]),
        socket_errors=dict(
            zip(
                ("connect", "read", "write", "timeout"),
                map(int, socket or (0, 0, 0, 0)),
                strict=True,
            )
        ),
        raw=out,
    )


def run_wrk(
    name: str,
    server: Server,
    path: str,
    script: str,
    creds: Path | None,
    duration: float,
    connections: int,
    threads: int,
) -> WrkResult:
    cmd = [
        shutil.which("wrk") or "/usr/bin/wrk",
        "--latency",
        "--threads", str(threads),
        "--connections", str(connections),
        "--duration", f"{max(1, round(duration))}s",
        "--timeout", "5s",
        "--script", str(BENCH / script),
        server.base() + path,
    ]  # fmt: skip
    if creds is not None:
        cmd += ["--", str(creds)]
    proc = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=duration + 60)
    finally:
        stop(proc)
    if proc.returncode != 0:
        raise BenchError(f"wrk exited {proc.returncode}:\n{out}")
    return parse_wrk(name, out)


def curl_sample(server: Server, scenario: str, creds: Path | None, tries: int = 20) -> str:
    """Replay requests of the scenario with curl (up to `tries` random members) and show the
    first one that is not 2xx, or the last one if all were fine, to show what an error is."""
    curl = shutil.which("curl")
    if curl is None:
        return "(curl is not installed)"
    members = random.sample(read_credentials(creds), tries) if creds else [None]
    out, status = "", None
    for member in members[:tries]:
        cmd = [curl, "-sS", "-i", "--max-time", "10", "-H", "User-Agent:"]
        if member is None:
            cmd.append(server.base() + "/")
        else:
            _public_id, cookie, token = member
            cmd += ["-H", f"Cookie: cc_session={cookie}"]
            if scenario == "me":
                cmd.append(server.base() + "/me")
            else:
                cmd += [
                    "-H", f"X-CSRFToken: {token}",
                    "-H", "HX-Request: true",
                    "--data", "granted=1",
                    server.base() + "/me/consents/advertising",
                ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        out = done.stdout + done.stderr
        found = re.match(r"HTTP/[\d.]+ (\d+)", out)
        status = int(found.group(1)) if found else None
        if status is None or not 200 <= status < 300:
            break
    verdict = (
        "a failing request"
        if status is None or not 200 <= status < 300
        else (f"all {len(members[:tries])} replayed requests succeeded; the last one")
    )
    return f"$ curl ... ({scenario}): {verdict}:\n" + "\n".join(out.splitlines()[:30])


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_tree_cpu(root_pid: int) -> float | None:
    """CPU seconds (user + system) used so far by a process and its live descendants, from
    /proc (Linux); None elsewhere. A descendant that exits in between takes its time with it:
    gunicorn's workers here live as long as their server."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue  # exited meanwhile
        pid = int(entry)
        children.setdefault(int(fields[1]), []).append(pid)  # fields[1]: the parent's pid
        times[pid] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime + stime
    if root_pid not in times:
        return None
    total, unvisited = 0.0, [root_pid]
    while unvisited:
        pid = unvisited.pop()
        total += times.get(pid, 0.0)
        unvisited.extend(children.get(pid, ()))
    return total


def measure(
    name: str,
    server: Server,
    args,
    creds: Path | None,
    path: str,
    before=None,
    script: str | None = None,
) -> WrkResult:
    """Warm up (every worker boots, imports and compiles its templates), then measure.

    :param before: called between the warm-up and the measured run.
    :param script: the wrk script in bench/ (default `<name>.lua`).
    """
    script = script or f"{name}.lua"
    if args.warmup > 0:
        warm = run_wrk(
            f"{name}-warmup",
            server,
            path,
            script,
            creds,
            args.warmup,
            args.connections,
            args.threads,
        )
        check_errors(warm, server, creds)
    if before is not None:
        before()
    cpu_before = process_tree_cpu(server.proc.pid)
    result = run_wrk(
        name, server, path, script, creds, args.duration, args.connections, args.threads
    )
    cpu_after = process_tree_cpu(server.proc.pid)
    if cpu_before is not None and cpu_after is not None and result.requests:
        result.server_cpu_ms = (cpu_after - cpu_before) * 1000 / result.requests
    cpu = (
        f", server CPU {result.server_cpu_ms:.2f} ms each"
        if result.server_cpu_ms is not None
        else ""
    )
    log(
        f"  {name}: {result.rps:.1f} req/s, p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms,"
        f" {result.requests} requests, errors {result.errors}{cpu}"
    )
    check_errors(result, server, creds)
    return result


def check_errors(result: WrkResult, server: Server, creds: Path | None) -> None:
    """Fail loudly on any error response or socket error, with a sample and the server log."""
    if not result.errors:
        return
    scenario = result.name.removesuffix("-warmup")
    log(result.raw)
    log(curl_sample(server, scenario, creds))
    log(f"--- {server.log_path} (tail)\n{tail(server.log_path)}")
    raise BenchError(
        f"{result.name}: {result.non_2xx_3xx} responses >= 400 (wrk), {result.bad_status} non-2xx"
        f" (first {result.first_bad_status}), socket errors {result.socket_errors}"
    )


# --- worker tuning ----------------------------------------------------------------------


def tune(args, logs: Path) -> int:
    """Hello world with several worker counts and wrk thread counts, interleaved rounds."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    combos = [(w, t) for w in (2, 3, 4, 6, 8) for t in (1, 2)]
    samples: dict[tuple[int, int], list[float]] = {c: [] for c in combos}
    for round_no in range(args.tune_rounds):
        for workers, threads in combos:
            server = start_server("hello", "hello:app", BENCH, env, workers, "/", logs)
            try:
                run_wrk("warmup", server, "/", "hello.lua", None, 1, args.connections, threads)
                result = run_wrk(
                    "hello",
                    server,
                    "/",
                    "hello.lua",
                    None,
                    args.duration,
                    args.connections,
                    threads,
                )
            finally:
                stop(server.proc)
            samples[(workers, threads)].append(result.rps)
            log(
                f"round {round_no + 1}: workers={workers} wrk-threads={threads}: "
                f"{result.rps:.0f} req/s p99={result.p99_ms:.2f}ms"
            )
    log("median req/s over rounds:")
    for (workers, threads), values in sorted(
        samples.items(), key=lambda kv: -statistics.median(kv[1])
    ):
        log(
            f"  workers={workers} wrk-threads={threads}: {statistics.median(values):.0f} "
            f"(min {min(values):.0f}, max {max(values):.0f})"
        )
    return 0


# --- main -------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of load before each")
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=WRK_THREADS, help="wrk threads")
    parser.add_argument("--workers", type=int, default=GUNICORN_WORKERS, help="gunicorn workers")
    parser.add_argument("--worker-class", help="gunicorn worker class (gthread, sync)")
    parser.add_argument("--gthreads", type=int, help="threads per gunicorn gthread worker")
    parser.add_argument(
        "--root",
        type=Path,
        default=ROOT,
        help="serve this checkout's wsgi:app (e.g. an older commit, for a before/after run);"
        " the database is seeded and migrated by this one",
    )
    parser.add_argument(
        "--only",
        choices=SCENARIOS,
        help="run one scenario (the hello baseline runs around it anyway, for the ratio)",
    )
    parser.add_argument(
        "--service-sample",
        type=int,
        default=50,
        help="members whose history is written through set_consent",
    )
    parser.add_argument("--seed", type=int, default=20261125, help="seed for the member data")
    parser.add_argument(
        "--rounds", type=int, default=1,
        help="measure the app's scenarios this many times, hello world before and after each"
        " round; each round's ratio is against the hello runs around it, and the figure is the"
        " median round",
    )  # fmt: skip
    parser.add_argument("--keep-db", action="store_true", help="leave the bench database")
    parser.add_argument(
        "--tune", action="store_true", help="only measure hello world for several worker counts"
    )
    parser.add_argument("--tune-rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def apply_server_options(args) -> None:
    """--worker-class, --workers and --gthreads, for every server this process starts."""
    for name, value in (
        ("GUNICORN_WORKER_CLASS", args.worker_class),
        ("GUNICORN_WORKERS", args.workers),
        ("GUNICORN_THREADS", args.gthreads),
    ):
        if value:
            os.environ[name] = str(value)


def measure_app_round(args, app_env_, creds, logs, app_scenarios, results, checks, failures,
                      *, first: bool) -> None:
    """One round of the app's scenarios on a fresh server: `/me`, then the toggle, whose
    measured run must have written one consent event per completed request, with the ledger
    and the state still agreeing after it."""
    server = start_server("app", "wsgi:app", args.root.resolve(), app_env_, None, "/healthz", logs)
    try:
        if first:
            preflight(server, creds)
        if "me" in app_scenarios:
            results.setdefault("me", []).append(measure("me", server, args, creds, "/me"))
        if "toggle" in app_scenarios:
            # Count only the measured run's writes: the warm-up writes too.
            def remember_count() -> None:
                checks["_events_before"] = settled_count("consent_event")

            results.setdefault("toggle", []).append(
                measure(
                    "toggle", server, args, creds, "/me/consents/advertising",
                    before=remember_count,
                )  # fmt: skip
            )
    finally:
        stop(server.proc)  # graceful: requests in flight finish before the counts
    if "toggle" not in app_scenarios:
        return
    added = count_rows("consent_event") - checks.pop("_events_before")
    done_ = results["toggle"][-1].requests
    # wrk stops counting at the deadline; up to one request per connection is still in
    # flight then, and the server completes it.
    writes_ok = done_ <= added <= done_ + args.connections
    checks.setdefault("toggle_writes", []).append(
        {"wrk_completed": done_, "events_added": added, "ok": writes_ok}
    )
    log(
        f"check: toggle wrote {added} consent events for {done_} completed requests:"
        f" {'ok' if writes_ok else 'MISMATCH'}"
    )
    if not writes_ok:
        failures.append("toggle event count")
    agree = ledger_state_agree()
    checks.setdefault("ledger_state_agree", []).append(agree)
    log(
        f"check: ledger and state agree for all {agree['pairs']} member/purpose pairs:"
        f" {'ok' if agree['ok'] else 'FAILED ' + json.dumps(agree)}"
    )
    if not agree["ok"]:
        failures.append("ledger and state disagree")


def main(argv=None) -> int:
    args = parse_args(argv)
    apply_server_options(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    logs = RESULTS / "logs"
    logs.mkdir(exist_ok=True)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, _on_sigterm)
    # Also when started in the background by a shell, which would leave SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.tune:
        try:
            return tune(args, logs)
        finally:
            stop_all()

    wanted = [args.only] if args.only else list(SCENARIOS)
    app_scenarios = [s for s in wanted if s != "hello"]
    started_at = datetime.now(UTC)
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        log(
            f"note: the machine is busy before the run (load average {load_before[0]:.2f}): "
            "other processes compete for the 2 cores, so expect lower and noisier numbers"
        )
    t0 = time.monotonic()
    secret_key = secrets.token_hex(32)  # 64 characters, new every run
    env = app_env(secret_key)
    tmp = Path(tempfile.mkdtemp(prefix="cc-bench-"))
    creds = tmp / "members.tsv"
    results: dict[str, list[WrkResult]] = {}
    checks: dict = {}
    failures: list[str] = []
    info: dict = {}
    try:
        if app_scenarios:
            log(f"database {DB_NAME}: create, migrate, seed")
            create_database()
            migrate(env)
            flask_cli(env, "demo", "seed")
            os.environ.update({k: env[k] for k in production_settings("")})
            from consent_center import create_app

            app = create_app("production")
            seeded = seed_members(
                app, args.members, min(args.service_sample, args.members), random.Random(args.seed)
            )
            log(
                f"  {seeded.members} members, {seeded.events} consent events "
                f"({seeded.via_service} members through set_consent) in {seeded.seconds:.1f} s"
            )
            info["seed"] = asdict(seeded)
            for name, result in verify_chains(env).items():
                log(f"  flask {name} verify (seeded): {result['output']}")
                if result["exit"] != 0:
                    raise BenchError(f"seeded {name} chain does not verify:\n{result['errors']}")
            count = write_credentials(app, creds)
            log(f"  {count} signed-in sessions written")
            settle_database()

        log(
            f"gunicorn: {server_settings()}; wrk: {args.threads} thread(s), "
            f"{args.connections} connections, {args.duration:g} s (+{args.warmup:g} s warm-up)"
        )
        hello_env = dict(env, PYTHONUNBUFFERED="1")
        app_env_ = dict(env)
        if args.root.resolve() != ROOT:
            app_env_["PYTHONPATH"] = str(args.root.resolve())
            log(f"serving the app from {args.root}")

        def hello_run() -> None:
            server = start_server("hello", "hello:app", BENCH, hello_env, None, "/", logs)
            try:
                results.setdefault("hello", []).append(measure("hello", server, args, None, "/"))
            finally:
                stop(server.proc)

        hello_run()
        for round_no in range(args.rounds if app_scenarios else 0):
            if args.rounds > 1:
                log(f"round {round_no + 1} of {args.rounds}")
            measure_app_round(args, app_env_, creds, logs, app_scenarios, results, checks,
                              failures, first=round_no == 0)  # fmt: skip
            hello_run()
        if not app_scenarios:
            hello_run()

        if app_scenarios:
            for name, result in verify_chains(env).items():
                checks[f"{name}_verify"] = result
                log(f"check: flask {name} verify: exit {result['exit']}: {result['output']}")
                if result["exit"] != 0:
                    log(result["errors"])
                    failures.append(f"flask {name} verify")
    except BenchError as exc:
        log(f"FAILED: {exc}")
        failures.append(str(exc).splitlines()[0])
    except KeyboardInterrupt:
        log("interrupted; stopping everything")
        failures.append("interrupted")
    except Exception as exc:  # noqa: BLE001 - report it, clean up, exit 1
        traceback.print_exc()
        log(f"FAILED: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        failures.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
        if not args.keep_db and app_scenarios and not failures:
            try:
                import psycopg

                with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
            except Exception as exc:  # noqa: BLE001 - clean-up is best effort
                log(f"(could not drop {DB_NAME}: {exc})")

    if "interrupted" in failures:
        return 130
    if "hello" not in results or (
        app_scenarios
        and (len(results["hello"]) < 2 or not all(s in results for s in app_scenarios))
    ):
        # Never leave an older run's numbers looking current.
        (RESULTS / "latest.json").write_text(
            json.dumps(
                {
                    "started_at": started_at.isoformat(timespec="seconds"),
                    "ok": False,
                    "failures": failures,
                    "measurements": [],
                },
                indent=2,
            )
            + "\n"
        )
        return 1

    hellos = results["hello"]
    baseline = statistics.mean(r.rps for r in hellos)
    lines, measurements = [], []
    # Round i ran between hello runs i and i + 1: its ratio is against their mean. A round
    # that failed before its closing hello run has no ratio.
    round_ratios = {
        s: [
            r.rps / statistics.mean((hellos[i].rps, hellos[i + 1].rps))
            for i, r in enumerate(results[s][: len(hellos) - 1])
        ]
        for s in app_scenarios
    }
    summary = {
        "hello": (baseline, statistics.mean(r.p99_ms for r in hellos), 1.0),
        **{
            s: (
                statistics.median(r.rps for r in results[s]),
                statistics.median(r.p99_ms for r in results[s]),
                statistics.median(round_ratios[s]),
            )
            for s in app_scenarios
        },
    }
    for name, ratios in round_ratios.items():
        if len(ratios) > 1:
            log(f"{name}: ratio per round {' / '.join(f'{x:.3f}' for x in ratios)}; the median"
                f" round {statistics.median(ratios):.3f}")  # fmt: skip
    if len(hellos) > 1:
        spread = (max(r.rps for r in hellos) - min(r.rps for r in hellos)) / baseline * 100
        log(
            f"hello runs: {' / '.join(f'{r.rps:.1f}' for r in hellos)} req/s "
            f"(differ by up to {spread:.1f}%); each round against the two around it"
        )
        if spread > 15:
            log(
                "note: the hello runs differ by more than 15%: the machine was busy during"
                " the run, so the ratios are uncertain; run again when it is quiet, or with"
                " more --rounds"
            )
        document_notes = {"hello_spread_percent": round(spread, 1)}
    else:
        document_notes = {}
    for name, target in TARGETS.items():
        if name in summary:
            ratio = summary[name][2]
            log(
                f"target: {name} ratio >= {target:.2f}: {ratio:.3f} "
                f"{'met' if ratio >= target else 'MISSED'}"
            )
    for name, (rps, p99, ratio) in summary.items():
        cpus = [r.server_cpu_ms for r in results[name] if r.server_cpu_ms is not None]
        cpu = f" cpu_ms={statistics.median(cpus):.2f}" if cpus else ""
        lines.append(f"bench {name} {rps:.1f} p99={p99:.2f} ratio={ratio:.3f}{cpu}")
        measurements.append(
            {
                "name": name,
                "rps": round(rps, 1),
                "p99_ms": round(p99, 2),
                "ratio": round(ratio, 3),
                "ratio_per_round": [round(x, 3) for x in round_ratios.get(name, [])],
                "target_ratio": TARGETS.get(name),
            }
        )
    document = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - t0, 1),
        "ok": not failures,
        "failures": failures,
        "measurements": measurements,
        "runs": [
            {k: v for k, v in asdict(r).items() if k != "raw"} | {"errors": r.errors}
            for name in ("hello", *app_scenarios)
            for r in results[name]
        ],
        "checks": checks,
        **document_notes,
        "settings": {
            "gunicorn": {
                "settings": server_settings(),
                "config": "gunicorn.conf.py",
                "bind": "127.0.0.1:<ephemeral>",
                "app": "wsgi:app / hello:app",
                "root": str(args.root),
            },
            "wrk": {
                "threads": args.threads,
                "connections": args.connections,
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "timeout": "5s",
            },
            "rounds": args.rounds,
            "members": args.members,
            "config": "CONSENT_CENTER_ENV=production, random 64-char SECRET_KEY",
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        **info,
    }
    (RESULTS / "latest.json").write_text(json.dumps(document, indent=2) + "\n")
    log(f"wrote {RESULTS / 'latest.json'} ({document['seconds']} s in all)")
    for line in lines:
        print(line)
    print(
        f"bench load_average before={load_before[0]:.2f} after={os.getloadavg()[0]:.2f}"
        f" commit={commit_of(args.root)} server={server_settings()}"
    )
    return 1 if failures else 0


def commit_of(root: Path) -> str:
    """The commit a checkout serves (`+` when it has changes), or what it says it is."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        marker = root / "COMMIT"
        return marker.read_text().strip() if marker.exists() else str(root)


if __name__ == "__main__":
    sys.exit(main())
