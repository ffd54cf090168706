"""API benchmark: `GET /api/v1/members/{id}/consents` under gunicorn on PostgreSQL as a ratio to
hello world in the same run, and the export of a 1,000,000-member audience (rows/s and the
gunicorn worker's peak RSS).

    .venv/bin/python bench/api_bench.py [--members 1000000] [--duration 10] [--keep-db]

1. Makes a fresh PostgreSQL database `consent_center_api_bench` (not bench/run.py's), builds
   the schema with `flask db upgrade heads`, seeds the policy with `flask demo seed`, then
   inserts set-wise (INSERT ... SELECT generate_series) N members usable for advertising (the
   first 100,000 also for trend analysis) plus 1,000 each that must never be in an audience:
   minors, accounts awaiting a guardian, withdrawn consents, erased members. Their consent
   events are plain rows (the hash chain is not computed: this benchmark reads
   `consent_state`, and `flask ledger verify` is not run on this database).
2. Creates a token with `flask api-token create`. Rate limits stay on, with a ceiling the run
   cannot reach, counted in Redis (redis://127.0.0.1:6379/14, or BENCH_RATELIMIT_STORAGE_URI)
   as a per-token limit must be with several workers: memory:// counts per worker.
3. Hello world (bench/hello.py), then the app (wsgi:app, production config), then hello world
   again, under gunicorn with bench/run.py's settings (sync, 4 workers) and wrk (1 thread, 32
   connections); `api_consents.lua` asks for a random member of 10,000 per request. The
   ratio is requests/s over the mean of the two hello runs. Nothing is cached: every request
   reads the database. For reference, the app's own `/healthz` (one SELECT 1 through the
   same stack) is measured on the same server.
4. The exports, on a separate gunicorn with ONE worker (so the worker is known): after a warm
   request, GET /api/v1/audiences/trend_analysis (100,000 rows), then /advertising as NDJSON
   and as CSV (N rows each), read by a plain HTTP client; rows/s from the first request byte
   to the last response byte; the worker's VmRSS and VmHWM (peak RSS) from /proc after each.
   Memory is flat when the peak after N rows is the peak after 100,000.
5. Prints one line per measurement and writes bench/results/api_latest.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness  # noqa: E402  (bench/run.py: processes, gunicorn, wrk, PostgreSQL)

DB_NAME = "consent_center_api_bench"
DB_URL = f"{harness.PG_SERVER}/{DB_NAME}"
TARGET_RATIO = 0.30
# The export streams at >= half the rate of a bare server-side cursor, in flat memory: its
# worker's peak RSS after the whole audience is within FLAT_GROWTH_KIB of the peak after the
# 100,000-row one.
TARGET_EXPORT_RATIO = 0.5
FLAT_GROWTH_KIB = 8 * 1024
EXCLUDED_EACH = 1_000
TREND_MEMBERS = 100_000
SAMPLE_IDS = 10_000


def log(message: str) -> None:
    harness.log(message)


def create_database() -> None:
    import psycopg

    with psycopg.connect(harness.ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def drop_database() -> None:
    import psycopg

    with psycopg.connect(harness.ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


# 16 random bytes, URL-safe base64 without padding: the shape of new_public_id().
PUBLIC_ID_SQL = (
    "rtrim(translate(encode(decode(md5(random()::text || clock_timestamp()::text || g::text),"
    " 'hex'), 'base64'), '+/', '-_'), '=')"
)


def seed(n: int) -> dict:
    """N usable members and 4 x EXCLUDED_EACH who must never appear, with consents, set-wise."""
    import psycopg

    from consent_center.ledger_keys import LEGACY_KEY_ID


    started = time.monotonic()
    with psycopg.connect(DB_URL, autocommit=False) as conn:
        policy_id = conn.execute("SELECT max(id) FROM policy_version").fetchone()[0]
        given = (
            "public_id, name, email, birth_date, locale, role, status, email_verified_at,"
            " created_at, updated_at, notify_email, notify_sms"
        )
        extra_cols, extra_vals, extra = harness.required_extras(conn, "member", given)
        groups = [
            # (name tag, count, birth date SQL, status, public id SQL)
            ("usable", n, "date '1970-01-01' + (g * 37) %% 12000", "active", PUBLIC_ID_SQL),
            ("minor", EXCLUDED_EACH, "current_date - 3650", "active", PUBLIC_ID_SQL),
            ("waiting", EXCLUDED_EACH, "current_date - 3650", "awaiting_guardian", PUBLIC_ID_SQL),
            ("withdrawn", EXCLUDED_EACH, "date '1980-01-01'", "active", PUBLIC_ID_SQL),
            ("erased", EXCLUDED_EACH, "NULL::date", "erased", f"'erased-' || {PUBLIC_ID_SQL}"),
        ]
        for tag, count, birth, status, public_id in groups:
            conn.execute(
                f"""
                INSERT INTO member ({given}{extra_cols})
                SELECT {public_id}, 'api-bench {tag}', 'api-bench-{tag}-' || g || '@example.com',
                       {birth}, 'en', 'member', '{status}', now(), now(), now(), true,
                       false{extra_vals}
                FROM generate_series(1, %(count)s) AS g
                """,
                {"count": count, **extra},
            )
        # The chains are not verified on this database (see the docstring): legacy links.
        columns = (
            "receipt_id, member_id, seq, purpose, granted, policy_version_id, actor,"
            " actor_member_id, method, created_at, prev_hash, hash, key_id"
        )
        extra_cols, extra_vals, extra = harness.required_extras(conn, "consent_event", columns)
        conn.execute(
            f"""
            INSERT INTO consent_event ({columns}{extra_cols})
            SELECT gen_random_uuid()::text, id, 1, 'advertising', name <> 'api-bench withdrawn',
                   %(policy)s, 'member', id, 'form', now() - interval '1 day', repeat('0', 64),
                   md5(id::text) || md5(public_id), %(legacy)s{extra_vals}
            FROM member WHERE name LIKE 'api-bench %%'
            """,
            {"policy": policy_id, "legacy": LEGACY_KEY_ID, **extra},
        )
        conn.execute(
            f"""
            INSERT INTO consent_event ({columns}{extra_cols})
            SELECT gen_random_uuid()::text, id, 2, 'trend_analysis', true, %(policy)s, 'member',
                   id, 'form', now() - interval '1 hour', repeat('0', 64),
                   md5(public_id) || md5(id::text), %(legacy)s{extra_vals}
            FROM member WHERE name = 'api-bench usable' ORDER BY id LIMIT %(trend)s
            """,
            {"policy": policy_id, "trend": TREND_MEMBERS, "legacy": LEGACY_KEY_ID, **extra},
        )
        given = "member_id, purpose, granted, event_id, policy_version_id, updated_at"
        extra_cols, extra_vals, extra = harness.required_extras(conn, "consent_state", given)
        conn.execute(
            f"""
            INSERT INTO consent_state ({given}{extra_cols})
            SELECT member_id, purpose, granted, id, policy_version_id, created_at{extra_vals}
            FROM consent_event
            """,
            extra,
        )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        sample = [
            row[0]
            for row in conn.execute(
                "SELECT public_id FROM member WHERE name LIKE 'api-bench %%'"
                " AND status <> 'erased' ORDER BY random() LIMIT %s",
                (SAMPLE_IDS,),
            )
        ]
        total = conn.execute("SELECT count(*) FROM member").fetchone()[0]
    return {"members": total, "sample": sample, "seconds": time.monotonic() - started}


def worker_pids(master: int) -> list[int]:
    """The gunicorn master's children, from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == master:
                pids.append(int(entry.name))
    return sorted(pids)


def memory_kib(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    return {
        k: int(re.search(rf"^{k}:\s+(\d+) kB", status, re.M).group(1)) for k in ("VmRSS", "VmHWM")
    }


def export(port: int, path: str, token: str, accept: str) -> dict:
    """Read a whole audience; returns rows, bytes, seconds (first request byte to last byte)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}", "Accept": accept})
    response = conn.getresponse()
    if response.status != 200:
        raise harness.BenchError(f"GET {path}: {response.status} {response.read()[:300]!r}")
    lines = size = 0
    first = b""
    while chunk := response.read(1 << 20):
        if not first:
            first = chunk[:200]
        lines += chunk.count(b"\n")
        size += len(chunk)
    seconds = time.perf_counter() - started
    conn.close()
    rows = lines - (1 if accept == "text/csv" else 0)  # the CSV header line
    return {
        "rows": rows,
        "bytes": size,
        "seconds": seconds,
        "first": first.decode(errors="replace"),
    }


# The baseline of an export: a bare server-side cursor (psycopg alone, in a process of its own
# that imports nothing else) runs the app's own audience SQL on the same database and turns
# each row into the same NDJSON line, discarding it. It prints rows, seconds (from the query
# to the last row) and its peak RSS in KiB.
BARE_CURSOR = """
import json, re, sys, time
import psycopg
url, sql = sys.argv[1], sys.stdin.read()
with psycopg.connect(url) as conn:
    conn.execute("SET cursor_tuple_fraction = 1.0")
    started = time.perf_counter()
    rows = size = 0
    with conn.cursor(name="bare_audience") as cursor:
        cursor.itersize = 5000
        cursor.execute(sql)
        while batch := cursor.fetchmany(5000):
            text = "".join(f'{{"member_id":"{pid}","since":"{since}"}}\\n' for pid, since in batch)
            rows += len(batch)
            size += len(text)
    seconds = time.perf_counter() - started
status = open("/proc/self/status").read()  # getrusage's peak survives exec: not this one's
peak = int(re.search(r"^VmHWM:\\s+(\\d+) kB", status, re.M).group(1))
print(json.dumps({"rows": rows, "bytes": size, "seconds": seconds, "VmHWM": peak}))
"""


def audience_sql(purpose: str) -> str:
    """The SQL the app runs for an audience export (the moment fixed as a literal)."""
    from consent_center import create_app
    from consent_center.extensions import db
    from consent_center.services.downstream import audience_query

    app = create_app("testing", SQLALCHEMY_DATABASE_URI=DB_URL.replace(
        "postgresql://", "postgresql+psycopg://"))  # fmt: skip
    with app.app_context():
        compiled = audience_query(purpose).compile(
            dialect=db.engine.dialect, compile_kwargs={"literal_binds": True}
        )
        db.engine.dispose()
    return str(compiled).replace("%%", "%")  # run without parameters: no escapes


def bare_cursor(purpose: str) -> dict:
    """Stream one audience through a bare server-side cursor (see BARE_CURSOR)."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", BARE_CURSOR, DB_URL],
        input=audience_sql(purpose), capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    return json.loads(done.stdout)


class SkipExports(Exception):
    """--skip-exports: the run ends after the consents measurement."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000, help="usable members")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=harness.WRK_THREADS)
    parser.add_argument("--workers", type=int, default=harness.GUNICORN_WORKERS)
    parser.add_argument("--worker-class", help="gunicorn worker class (gthread, sync)")
    parser.add_argument("--gthreads", type=int, help="threads per gunicorn gthread worker")
    parser.add_argument("--root", type=Path, default=harness.ROOT,
                        help="serve this checkout's wsgi:app (a before/after run)")
    parser.add_argument("--skip-exports", action="store_true", help="the consents run only")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--reuse-db", action="store_true", help="skip seeding (after --keep-db)")
    return parser.parse_args(argv)


def main(argv=None) -> int:  # noqa: C901 - a linear script
    args = parse_args(argv)
    harness.apply_server_options(args)
    logs = harness.RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, harness._on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        log(f"note: the machine is busy before the run (load average {load_before:.2f})")
    env = harness.app_env(secrets.token_hex(32))
    env.update(
        DATABASE_URL=DB_URL,
        API_RATE_LIMIT="1000000000 per minute",
        # Shared by all workers, as a per-token limit must be in production (memory:// counts
        # per worker, and starts a timer thread on most hits).
        RATELIMIT_STORAGE_URI=os.environ.get(
            "BENCH_RATELIMIT_STORAGE_URI", "redis://127.0.0.1:6379/14"
        ),
    )
    tmp = Path(tempfile.mkdtemp(prefix="cc-api-bench-"))
    ids = tmp / "members.tsv"
    report: dict = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"), "runs": {}}
    failures: list[str] = []
    try:
        if not args.reuse_db:
            log(f"database {DB_NAME}: create, migrate, seed {args.members} members")
            create_database()
            harness.flask_cli(env, "db", "upgrade", "heads")
            harness.flask_cli(env, "demo", "seed")
        seeded = seed(args.members) if not args.reuse_db else None
        if seeded:
            log(f"  {seeded['members']} members with consents in {seeded['seconds']:.1f} s")
            report["seed_seconds"] = round(seeded["seconds"], 1)
            sample = seeded["sample"]
        else:
            import psycopg

            with psycopg.connect(DB_URL) as conn:
                sample = [r[0] for r in conn.execute(
                    "SELECT public_id FROM member WHERE status <> 'erased' ORDER BY random()"
                    " LIMIT %s", (SAMPLE_IDS,))]  # fmt: skip
        name = f"bench-{secrets.token_hex(4)}"
        created = harness.flask_cli(
            env, "api-token", "create", name, "--scopes", "consents:read,audiences:read"
        )
        token = re.search(r"^(cc_\S+)$", created.stdout, re.M).group(1)
        ids.write_text("".join(f"{pid}\t{token}\t{token}\n" for pid in sample))

        log(
            f"gunicorn: {harness.server_settings()}; wrk: {args.threads} thread(s), "
            f"{args.connections} connections, {args.duration:g} s (+{args.warmup:g} s warm-up)"
        )
        hellos = []

        def hello_run() -> None:
            server = harness.start_server(
                "hello", "hello:app", harness.BENCH, dict(env), args.workers, "/", logs
            )
            try:
                hellos.append(harness.measure("hello", server, args, None, "/"))
            finally:
                harness.stop(server.proc)

        hello_run()
        app_env = dict(env)
        if args.root.resolve() != harness.ROOT:
            app_env["PYTHONPATH"] = str(args.root.resolve())
            log(f"serving the app from {args.root}")
        server = harness.start_server(
            "api", "wsgi:app", args.root.resolve(), app_env, None, "/healthz", logs
        )
        try:
            status, _headers, body = harness.http_request(
                server.port,
                "GET",
                f"/api/v1/members/{sample[0]}/consents",
                {"Authorization": f"Bearer {token}"},
            )
            if status != 200 or b'"usable_now"' not in body:
                raise harness.BenchError(f"preflight: {status} {body[:300]!r}")
            consents = harness.measure(
                "api_consents", server, args, ids, "/api/v1/members/x/consents"
            )
            floor = harness.measure("api_healthz", server, args, None, "/healthz")
        finally:
            harness.stop(server.proc)
        hello_run()
        baseline = statistics.mean(h.rps for h in hellos)
        ratio = consents.rps / baseline
        spread = abs(hellos[0].rps - hellos[1].rps) / baseline * 100
        log(
            f"hello runs: {' / '.join(f'{h.rps:.1f}' for h in hellos)} req/s (differ by "
            f"{spread:.1f}%); baseline = their mean"
        )
        report["runs"]["healthz"] = {
            "rps": round(floor.rps, 1),
            "p99_ms": floor.p99_ms,
            "ratio": round(floor.rps / baseline, 3),
        }
        log(f"reference: the app's /healthz (one SELECT 1) ratio {floor.rps / baseline:.2f}")
        report["runs"]["consents"] = {
            "rps": round(consents.rps, 1),
            "p99_ms": consents.p99_ms,
            "hello_rps": [round(h.rps, 1) for h in hellos],
            "ratio": round(ratio, 3),
            "target": TARGET_RATIO,
            "met": ratio >= TARGET_RATIO,
        }
        if ratio < TARGET_RATIO:
            failures.append(f"consents ratio {ratio:.2f} < {TARGET_RATIO}")

        log("exports: gunicorn with one sync worker")
        if args.skip_exports:
            raise SkipExports
        server = harness.start_server(
            "api-export", "wsgi:app", args.root.resolve(), app_env, 1, "/healthz", logs
        )
        try:
            [worker] = worker_pids(server.proc.pid)
            harness.http_request(
                server.port, "GET", f"/api/v1/members/{sample[0]}/consents",
                {"Authorization": f"Bearer {token}"},
            )  # fmt: skip
            exports = {"warm worker": {**memory_kib(worker)}}
            log(f"  warm worker: {exports['warm worker']}")
            ndjson, csv, audiences = "application/x-ndjson", "text/csv", "/api/v1/audiences/"
            plan = [
                ("trend_analysis ndjson", audiences + "trend_analysis", ndjson, TREND_MEMBERS),
                ("advertising ndjson", audiences + "advertising", ndjson, args.members),
                ("advertising csv", audiences + "advertising", csv, args.members),
            ]
            for label, path, accept, expected in plan:
                got = export(server.port, path, token, accept)
                memory = memory_kib(worker)
                rate = got["rows"] / got["seconds"]
                exports[label] = {
                    "rows": got["rows"],
                    "expected_rows": expected,
                    "seconds": round(got["seconds"], 2),
                    "rows_per_second": round(rate),
                    "megabytes": round(got["bytes"] / 1e6, 1),
                    **memory,
                }
                rss, peak = memory["VmRSS"] / 1024, memory["VmHWM"] / 1024
                log(
                    f"  {label}: {got['rows']} rows in {got['seconds']:.2f} s = {rate:,.0f} rows/s"
                    f" ({got['bytes'] / 1e6:.1f} MB); worker VmRSS {rss:.1f} MiB,"
                    f" peak (VmHWM) {peak:.1f} MiB"
                )
                if got["rows"] != expected:
                    failures.append(f"{label}: {got['rows']} rows, expected {expected}")
            growth = exports["advertising csv"]["VmHWM"] - exports["trend_analysis ndjson"]["VmHWM"]
            exports["peak_growth_kib_after_100k"] = growth
            log(f"  peak RSS growth from 100,000 to {args.members:,} rows: {growth / 1024:.1f} MiB")
            report["runs"]["exports"] = exports
        finally:
            harness.stop(server.proc)
        log("baseline: a bare server-side cursor on the same SQL and database (psycopg alone)")
        bare = {}
        for purpose, expected in (("trend_analysis", TREND_MEMBERS), ("advertising", args.members)):
            got = bare_cursor(purpose)
            bare[purpose] = got | {"rows_per_second": round(got["rows"] / got["seconds"])}
            log(
                f"  bare {purpose}: {got['rows']} rows in {got['seconds']:.2f} s ="
                f" {got['rows'] / got['seconds']:,.0f} rows/s;"
                f" peak RSS {got['VmHWM'] / 1024:.1f} MiB"
            )
            if got["rows"] != expected:
                failures.append(f"bare {purpose}: {got['rows']} rows, expected {expected}")
        # The app's NDJSON export of the large audience, against the bare cursor.
        ratio = exports["advertising ndjson"]["rows_per_second"] / bare["advertising"][
            "rows_per_second"
        ]
        exports["bare_cursor"] = bare
        exports["ratio_to_bare_cursor"] = round(ratio, 3)
        flat = growth <= FLAT_GROWTH_KIB
        log(
            f"bench audience_export {exports['advertising ndjson']['rows_per_second']:,} rows/s"
            f" ratio={ratio:.2f} to the bare cursor (target >= {TARGET_EXPORT_RATIO}:"
            f" {'met' if ratio >= TARGET_EXPORT_RATIO else 'MISSED'}); memory"
            f" {'flat' if flat else 'NOT flat'} (+{growth / 1024:.1f} MiB from 100,000 rows)"
        )
        if ratio < TARGET_EXPORT_RATIO:
            failures.append(f"export ratio {ratio:.2f} < {TARGET_EXPORT_RATIO}")
        if not flat:
            failures.append(f"export memory grew {growth / 1024:.1f} MiB after 100,000 rows")
    except SkipExports:
        pass
    except harness.BenchError as exc:
        log(f"FAILED: {exc}")
        failures.append(str(exc).splitlines()[0])
    except KeyboardInterrupt:
        failures.append("interrupted")
    except Exception as exc:  # noqa: BLE001 - report it, clean up, exit 1
        traceback.print_exc()
        failures.append(f"{type(exc).__name__}: {exc}")
    finally:
        harness.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
        if not args.keep_db and not failures:
            drop_database()
    if "consents" in report["runs"]:
        run = report["runs"]["consents"]
        log(
            f"bench api_consents {run['rps']:.1f} p99={run['p99_ms']:.2f} ratio={run['ratio']:.2f}"
            f" (target >= {TARGET_RATIO}: {'met' if run['met'] else 'MISSED'})"
        )
    report.update(
        ok=not failures,
        failures=failures,
        load_before=round(load_before, 2),
        load_after=round(os.getloadavg()[0], 2),
        server=harness.server_settings(),
        commit=harness.commit_of(args.root),
    )
    log(
        f"bench load_average before={load_before:.2f} after={os.getloadavg()[0]:.2f}"
        f" commit={report['commit']} server={report['server']}"
    )
    harness.RESULTS.mkdir(parents=True, exist_ok=True)
    (harness.RESULTS / "api_latest.json").write_text(json.dumps(report, indent=2) + "\n")
    for failure in failures:
        log(f"FAILED: {failure}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
