"""Where a request's time goes: /me, the consent toggle and the API's consents, in one
process, no server.

    .venv/bin/python bench/profile_app.py [--scenario me|toggle|api|all] [--requests 300]
                                      [--top 25] [--members 300] [--reuse-db]

Builds the same database and signed-in sessions as bench/run.py (or reuses the bench database
left by `run.py --keep-db` with --reuse-db), then calls the app through the Werkzeug test client,
one request at a time, with the production config. The `api` scenario asks
`GET /api/v1/members/{id}/consents` for a random member with a real bearer token made by
`flask api-token create` (as bench/api_bench.py does; a fresh one per run), its rate limit
counted in Redis (bench/api_bench.py's settings: a ceiling the run cannot reach). For each
scenario it prints:

* wall and CPU milliseconds per request, SQL statements and Redis round trips per request
  (unprofiled);
* the share of the profiled time spent in a few named layers (templates, lazy translations,
  SQL through the ORM, sign-in loading, forms, flush/commit; for the API: the request
  observer, the rate limit, the token and consents query, the JSON answer);
* the top functions by cumulative and by own time (cProfile).

cProfile roughly doubles Python's cost, so read its output as shares, and the unprofiled
numbers as the real cost. `py-spy record` on a gunicorn worker under wrk gives the same picture
under load (see bench/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import random
import re
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness  # noqa: E402  (bench/run.py)

# (label, how cProfile names the function: substring of "file:line(function)")
LAYERS = [
    ("whole request", "flask/app.py", "wsgi_app"),
    ("  template rendering", "flask/templating.py", "render_template"),
    ("    lazy translations (LazyString -> str)", "flask_babel/speaklater.py", "__str__"),
    ("    gettext/_ in templates", "jinja2/ext.py", "_gettext_alias"),
    ("  SQL through the ORM (Session._execute_internal)", "orm/session.py", "_execute_internal"),
    ("    waiting for PostgreSQL (psycopg wait)", "psycopg/connection.py", "wait"),
    ("  pool checkout incl. pre-ping", "pool/base.py", "_checkout"),
    ("  loading current_user (user_loader)", "flask_login/login_manager.py", "_load_user"),
    ("  flush (unit of work)", "orm/session.py", "_flush"),
    ("  commit", "orm/session.py", "commit"),
    ("  reloading expired attributes", "orm/state.py", "_load_expired"),
    ("  FlaskForm()", "wtforms/form.py", "__call__"),
    ("  wtforms translations load", "flask_wtf/i18n.py", "_get_translations"),
    ("  CSRF check", "flask_wtf/csrf.py", "protect"),
    ("  session cookie open/save", "flask/sessions.py", "open_session"),
]

# The API's layers, outermost first: the request observer (request id, metrics, access log)
# around DispatcherMiddleware around the API app.
API_LAYERS = [
    ("whole request (RequestObserver)", "consent_center/observability.py", "__call__"),
    ("  DispatcherMiddleware", "middleware/dispatcher.py", "__call__"),
    ("    the API app (Flask.wsgi_app)", "flask/app.py", "wsgi_app"),
    ("      request context push (incl. session open)", "flask/ctx.py", "push"),
    ("      request context pop (teardown)", "flask/ctx.py", "pop"),
    ("      URL matching", "flask/ctx.py", "match_request"),
    ("      before_request hooks", "flask/app.py", "preprocess_request"),
    ("        inputs guard", "web/inputs.py", "refuse_unreadable_input"),
    ("        read-only mode", "web/transactions.py", "_start_read_only"),
    ("        oversized body check", "web/security.py", "refuse_oversized_body"),
    ("        rate limit (Redis)", "web/api/views.py", "count_request"),
    ("          Redis round trip (read_response)", "redis/connection.py", "read_response"),
    ("      the view", "web/api/views.py", "consents"),
    ("        token + consents query", "services/downstream.py", "read_member_consents"),
    ("          SQLAlchemy execute", "engine/base.py", "execute"),
    ("          waiting for PostgreSQL (psycopg wait)", "psycopg/connection.py", "wait"),
    ("          pool checkout", "pool/base.py", "_checkout"),
    ("        jsonify", "flask/json/__init__.py", "jsonify"),
    ("      after_request hooks", "flask/app.py", "process_response"),
    ("      session close/remove (teardown_appcontext)", "orm/scoping.py", "remove"),
    ("      locale selection (Flask-Babel)", "flask_babel/__init__.py", "get_locale"),
    ("  metrics (count_request)", "consent_center/metrics.py", "count_request"),
    ("  access log line", "logging/__init__.py", "handle"),
]


def make_client(app, creds_path: Path, api_token: str | None = None):
    creds = harness.read_credentials(creds_path)  # read now: the file may go away
    client = app.test_client(use_cookies=False)
    client.environ_base.pop("HTTP_USER_AGENT", None)  # as wrk: keeps the session untouched
    bearer = {"Authorization": f"Bearer {api_token}"}

    def me():
        _id, cookie, _token = random.choice(creds)
        response = client.get("/me", headers={"Cookie": f"cc_session={cookie}"})
        assert response.status_code == 200, response.status_code
        response.close()  # as a server does: ends the request (metrics, access log)

    def toggle():
        _id, cookie, token = random.choice(creds)
        response = client.post(
            "/me/consents/" + random.choice(harness.OPTIONAL),
            data={"granted": random.choice("01")},
            headers={"Cookie": f"cc_session={cookie}", "X-CSRFToken": token, "HX-Request": "true"},
        )
        assert response.status_code == 200, (response.status_code, response.data[:300])
        response.close()

    def api():
        assert api_token is not None, "the api scenario needs a token (create_api_token)"
        public_id, _cookie, _token = random.choice(creds)
        response = client.get(f"/api/v1/members/{public_id}/consents", headers=bearer)
        assert response.status_code == 200, (response.status_code, response.data[:300])
        assert b'"usable_now"' in response.data
        response.close()

    return {"me": me, "toggle": toggle, "api": api}


def create_api_token(env: dict[str, str]) -> str:
    """A new token with the API's read scopes, made by the CLI (as bench/api_bench.py does)."""
    name = f"profile-{secrets.token_hex(4)}"
    created = harness.flask_cli(
        env, "api-token", "create", name, "--scopes", "consents:read,audiences:read"
    )
    return re.search(r"^(cc_\S+)$", created.stdout, re.M).group(1)


def count_redis_round_trips():
    """Count the commands (and pipelines) redis-py sends: one per round trip."""
    from redis.connection import AbstractConnection

    counter = {"n": 0}
    send = AbstractConnection.send_packed_command

    def counted(self, command, check_health=True):
        counter["n"] += 1
        return send(self, command, check_health)

    AbstractConnection.send_packed_command = counted
    return counter


def count_statements(app):
    """Count the statements sent on the app's engine and its read pool (`@read_only` requests)."""
    from sqlalchemy import event

    from consent_center.database import READ_ENGINE
    from consent_center.extensions import db

    counter = {"n": 0}
    with app.app_context():
        engines = [db.engine]
    if READ_ENGINE in app.extensions:
        engines.append(app.extensions[READ_ENGINE])

    def _count(*_args):
        counter["n"] += 1

    for engine in engines:
        event.listen(engine, "before_cursor_execute", _count)
    return counter


@contextlib.contextmanager
def logs_to_devnull():
    """The app's log lines (production: a JSON access line per request) are made and written,
    as under gunicorn, but to /dev/null instead of this terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def package_shares(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own (not cumulative) profiled time by package: where the CPU goes, layer by layer,
    without double counting; C functions (socket calls, builtins) under `~`."""
    own: dict[str, float] = {}
    for (filename, _line, _function), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():
        path = filename.replace(os.sep, "/")
        if "site-packages/" in path:
            package = path.split("site-packages/", 1)[1].split("/", 1)[0]
        elif "/consent_center/" in path:
            package = "consent_center/" + path.split("/consent_center/", 1)[1].split("/", 1)[0]
        elif path.startswith("~"):
            package = "~ (C functions: sockets, builtins)"
        else:
            package = "stdlib/" + Path(path).name
        own[package] = own.get(package, 0.0) + tt
    total = sum(own.values()) or 1.0
    return sorted(((k, v / total * 100) for k, v in own.items()), key=lambda kv: -kv[1])


def layer_shares(stats: pstats.Stats, layers: list) -> list[tuple[str, float]]:
    """Each layer's cumulative time as a share of the first layer's (the whole request)."""
    whole = layers[0][0]
    found = {}
    for (filename, _line, function), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
        for label, path_part, name in layers:
            if function == name and path_part in filename.replace(os.sep, "/"):
                found[label] = found.get(label, 0.0) + ct
    total = found.get(whole)
    if not total:
        return []
    return [(label, found.get(label, 0.0) / total * 100) for label, _p, _n in layers]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=("me", "toggle", "api", "all"), default="all")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--members", type=int, default=300)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=1, help="unprofiled rounds per scenario")
    parser.add_argument(
        "--timer", choices=("wall", "cpu"), default="wall",
        help="cProfile's clock: wall time (waits included) or this process's CPU time",
    )  # fmt: skip
    parser.add_argument("--dump", type=Path, help="write each scenario's cProfile stats to "
                        "DUMP.<scenario> (for pstats: callers, callees)")
    parser.add_argument("--reuse-db", action="store_true", help="keep the existing bench db")
    args = parser.parse_args(argv)

    env = harness.app_env(secrets.token_hex(32))
    # bench/api_bench.py's ceiling: the run counts every request in Redis and is never refused.
    env["API_RATE_LIMIT"] = "1000000000 per minute"
    os.environ.update({k: env[k] for k in [*harness.production_settings(""), "API_RATE_LIMIT"]})
    from consent_center import create_app

    if not args.reuse_db:
        harness.create_database()
        harness.migrate(env)
        harness.flask_cli(env, "demo", "seed")
    app = create_app("production")
    if not args.reuse_db:
        harness.seed_members(app, args.members, min(50, args.members), random.Random(1))
    with tempfile.TemporaryDirectory(prefix="cc-profile-") as tmp:
        creds = Path(tmp) / "members.tsv"
        harness.write_credentials(app, creds)
        calls = make_client(app, creds, create_api_token(env))
    statements = count_statements(app)
    redis_trips = count_redis_round_trips()

    for name in ("me", "toggle", "api") if args.scenario == "all" else (args.scenario,):
        call = calls[name]
        with logs_to_devnull():
            for _ in range(30):
                call()
        for _ in range(args.rounds):
            statements["n"] = redis_trips["n"] = 0
            with logs_to_devnull():
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(args.requests):
                    call()
                wall = (time.perf_counter() - wall) / args.requests * 1000
                cpu = (time.process_time() - cpu) / args.requests * 1000
            per_request = statements["n"] / args.requests
            trips = redis_trips["n"] / args.requests
            print(f"\n=== {name}: {wall:.2f} ms wall, {cpu:.2f} ms CPU, {per_request:.1f} SQL "
                  f"statements and {trips:.1f} Redis round trips per request "
                  "(unprofiled)")  # fmt: skip
        clock = time.process_time if args.timer == "cpu" else time.perf_counter
        profiler = cProfile.Profile(clock)
        with logs_to_devnull():
            profiler.enable()
            for _ in range(args.requests):
                call()
            profiler.disable()
        stats = pstats.Stats(profiler)
        if args.dump:
            stats.dump_stats(f"{args.dump}.{name}")
        print("share of the profiled request time:")
        for label, share in layer_shares(stats, API_LAYERS if name == "api" else LAYERS):
            print(f"  {share:5.1f}%  {label}")
        print("own profiled time by package:")
        for package, share in package_shares(stats)[:20]:
            print(f"  {share:5.1f}%  {package}")
        for order in ("cumulative", "tottime"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(args.top)
            body = out.getvalue()
            print(f"top {args.top} by {order}:")
            print(body[body.find("   ncalls") :].rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
