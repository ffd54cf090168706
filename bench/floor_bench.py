"""Floors: how far each target is from what this machine can do at all.

    .venv/bin/python bench/floor_bench.py [--duration 10] [--members 2000] [--only NAME,...]

`run.py` and `api_bench.py` measure the app against a Flask hello world. This measures, in
the same way and in one run, apps that do only the least work each request must do
(`bench/floor_apps.py`): one `SELECT 1`; that plus a Redis counter; the API's consents
request written without Flask, and on Flask, `limits` and SQLAlchemy Core alone (the stack
issue 16 prescribes); the consent toggle's SQL in one transaction without session,
CSRF, ORM or template; and `/me` and the toggle served by the app's own factory, views and
templates with none of the app's own layers around the request (`floor_apps:site_bare`).
Hello world runs before and after, and each floor prints
`bench floor_<name> <requests/s> p99=<ms> ratio=<r>` against their mean, next to the target
of the request it stands for; the app's own request that a floor stands for is measured in
the same run (`bench app_consents`, `app_me`, `app_toggle`). `--only floor_me_page,...`
runs some floors (and their app requests) only.
A target above its floor cannot be met by tuning the app:
only by doing less work per request than the floor does.

Uses the `consent_center_bench` database (built as `run.py` builds it, then dropped) and
Redis database 14 on 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import secrets
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness  # noqa: E402  (bench/run.py)

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
# (scenario, app in floor_apps, wrk script, path to check, what it stands for, its target,
#  the app's own request it is measured beside)
FLOORS = [
    ("floor_select1", "floor_apps:select1", "hello.lua", "/",
     "any page that reads the database", None, None),
    ("floor_select1_redis", "floor_apps:select1_redis", "hello.lua", "/",
     "an API request (+ rate limit)", None, None),
    ("floor_consents", "floor_apps:consents_bare", "api_consents.lua", None,
     "GET /api/v1/members/{id}/consents", 0.30, "app_consents"),
    ("floor_consents_stack", "floor_apps:consents_stack", "api_consents.lua", None,
     "the same on Flask, limits and SQLAlchemy Core", 0.30, "app_consents"),
    ("floor_consents_stack_incr", "floor_apps:consents_stack_incr", "api_consents.lua", None,
     "the same with a Redis INCR instead of limits", 0.30, "app_consents"),
    ("floor_toggle", "floor_apps:toggle_sql", "floor_toggle.lua", None,
     "POST /me/consents/<purpose>", 0.06, None),
    ("floor_me_page", "floor_apps:site_bare", "me.lua", "/healthz",
     "GET /me: the page itself, none of the app's own layers", 0.07, "app_me"),
    ("floor_toggle_page", "floor_apps:site_bare", "toggle.lua", "/healthz",
     "the consent toggle itself, none of the app's own layers", 0.06, "app_toggle"),
]  # fmt: skip
# The app's own requests, measured in the same run beside their floors: name -> wrk script.
APP_REQUESTS = {
    "app_consents": "api_consents.lua", "app_me": "me.lua", "app_toggle": "toggle.lua"
}
# Scripts that sign in with the members' session cookies (bench/run.py's members file); the
# others read the API token from the third column of a members file of their own.
SESSION_SCRIPTS = ("me.lua", "toggle.lua")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=harness.WRK_THREADS)
    parser.add_argument("--workers", type=int, default=harness.GUNICORN_WORKERS)
    parser.add_argument(
        "--only", type=lambda text: text.split(","), default=None, metavar="NAME[,NAME]",
        help="only these floors (e.g. floor_me_page), with the app's requests they stand for",
    )
    args = parser.parse_args(argv)
    unknown = set(args.only or ()) - {f[0] for f in FLOORS}
    if unknown:
        parser.error(f"no such floor: {', '.join(sorted(unknown))}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logs = harness.RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = harness.app_env(secrets.token_hex(32))
    floor_env = dict(env, FLOOR_DATABASE_URL=harness.DB_URL, FLOOR_REDIS_URL=REDIS_URL)
    floors_run = [f for f in FLOORS if args.only is None or f[0] in args.only]
    tmp = Path(tempfile.mkdtemp(prefix="cc-floor-"))
    sessions, tokens = tmp / "sessions.tsv", tmp / "tokens.tsv"
    try:
        harness.log(f"database {harness.DB_NAME}: create, migrate, seed {args.members} members")
        harness.create_database()
        harness.migrate(env)
        harness.flask_cli(env, "demo", "seed")
        os.environ.update({k: env[k] for k in harness.production_settings("")})
        from consent_center import create_app

        app = create_app("production")
        harness.seed_members(app, args.members, min(50, args.members), random.Random(1))
        created = harness.flask_cli(
            env, "api-token", "create", f"floor-{secrets.token_hex(4)}", "--scopes",
            "consents:read",
        )  # fmt: skip
        token = re.search(r"^(cc_\S+)$", created.stdout, re.M).group(1)
        harness.write_credentials(app, sessions)
        ids = [line.split("\t")[0] for line in sessions.read_text().splitlines()]
        tokens.write_text("".join(f"{i}\tx\t{token}\n" for i in ids))
        harness.settle_database()

        def creds(script: str) -> Path:
            return sessions if script in SESSION_SCRIPTS else tokens

        def hello() -> harness.WrkResult:
            server = harness.start_server(
                "hello", "hello:app", harness.BENCH, dict(env), args.workers, "/", logs
            )
            try:
                return harness.measure("hello", server, args, None, "/")
            finally:
                harness.stop(server.proc)

        hellos = [hello()]
        floors = {}
        for name, spec, script, health, _stands_for, _target, _app_request in floors_run:
            if health:
                server = harness.start_server(
                    name, spec, harness.BENCH, floor_env, args.workers, health, logs
                )
            else:
                server = _start_without_health(name, spec, floor_env, args, logs)
            try:
                floors[name] = harness.measure(
                    name, server, args, creds(script), "/", script=script
                )
            finally:
                harness.stop(server.proc)
        # The app itself in the same run, beside the floors of its requests.
        app_env = dict(env, API_RATE_LIMIT="1000000000 per minute")
        apps = {}
        for name in dict.fromkeys(f[6] for f in floors_run if f[6]):
            server = harness.start_server(
                "app", "wsgi:app", harness.ROOT, app_env, args.workers, "/healthz", logs
            )
            try:
                script = APP_REQUESTS[name]
                apps[name] = harness.measure(name, server, args, creds(script), "/",
                                             script=script)  # fmt: skip
            finally:
                harness.stop(server.proc)
        hellos.append(hello())
    finally:
        harness.stop_all()
        sessions.unlink(missing_ok=True)
        tokens.unlink(missing_ok=True)
        tmp.rmdir()
        _drop_database()
    baseline = statistics.mean(h.rps for h in hellos)
    harness.log(
        f"hello runs: {' / '.join(f'{h.rps:.1f}' for h in hellos)} req/s; baseline = their mean"
    )
    print(f"bench hello {baseline:.1f} p99={max(h.p99_ms for h in hellos):.2f} ratio=1.00"
          f"{_cpu(hellos[0])}")  # fmt: skip
    for name, _spec, _script, _health, stands_for, target, _app_request in floors_run:
        result = floors[name]
        ratio = result.rps / baseline
        note = f" (target of that request: >= {target:.2f})" if target else ""
        harness.log(f"{name}: {stands_for}, at most {ratio:.2f} of hello world{note}")
        print(f"bench {name} {result.rps:.1f} p99={result.p99_ms:.2f} ratio={ratio:.3f}"
              f"{_cpu(result)}")  # fmt: skip
    for name, result in apps.items():
        ratio = result.rps / baseline
        harness.log(f"{name}: the app's own request ({APP_REQUESTS[name]}), {ratio:.2f}")
        print(f"bench {name} {result.rps:.1f} p99={result.p99_ms:.2f} ratio={ratio:.3f}"
              f"{_cpu(result)}")  # fmt: skip
    return 0


def _cpu(result: harness.WrkResult) -> str:
    """The server's CPU per request (`run.process_tree_cpu`), when it could be read."""
    return f" cpu_ms={result.server_cpu_ms:.2f}" if result.server_cpu_ms is not None else ""


def _start_without_health(name, spec, env, args, logs) -> harness.Server:
    """Floors without a GET: wait for gunicorn's port, then for a 404 on `/`."""
    return harness.start_server(name, spec, harness.BENCH, env, args.workers, "/", logs,
                                ok_statuses=(404, 405))  # fmt: skip


def _drop_database() -> None:
    import psycopg

    with psycopg.connect(harness.ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {harness.DB_NAME} WITH (FORCE)")


if __name__ == "__main__":
    sys.exit(main())
