"""Where a request's time goes: /me and the consent toggle in one process, no server.

    .venv/bin/python bench/profile_app.py [--scenario me|toggle|all] [--requests 300] [--top 25]
                                      [--members 300] [--reuse-db]

Builds the same database and signed-in sessions as bench/run.py (or reuses the bench database
left by `run.py --keep-db` with --reuse-db), then calls the app through the Werkzeug test client,
one request at a time, with the production config. For each scenario it prints:

* wall and CPU milliseconds per request and SQL statements per request (unprofiled);
* the share of the profiled time spent in a few named layers (templates, lazy translations,
  SQL through the ORM, sign-in loading, forms, flush/commit);
* the top functions by cumulative and by own time (cProfile).

cProfile roughly doubles Python's cost, so read its output as shares, and the unprofiled
numbers as the real cost. `py-spy record` on a gunicorn worker under wrk gives the same picture
under load (see bench/README.md).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
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


def make_client(app, creds_path: Path):
    creds = harness.read_credentials(creds_path)  # read now: the file may go away
    client = app.test_client(use_cookies=False)
    client.environ_base.pop("HTTP_USER_AGENT", None)  # as wrk: keeps the session untouched

    def me():
        _id, cookie, _token = random.choice(creds)
        response = client.get("/me", headers={"Cookie": f"cc_session={cookie}"})
        assert response.status_code == 200, response.status_code

    def toggle():
        _id, cookie, token = random.choice(creds)
        response = client.post(
            "/me/consents/" + random.choice(harness.OPTIONAL),
            data={"granted": random.choice("01")},
            headers={"Cookie": f"cc_session={cookie}", "X-CSRFToken": token, "HX-Request": "true"},
        )
        assert response.status_code == 200, (response.status_code, response.data[:300])

    return {"me": me, "toggle": toggle}


def count_statements(app):
    from sqlalchemy import event

    from consent_center.extensions import db

    counter = {"n": 0}
    with app.app_context():
        engine = db.engine

    @event.listens_for(engine, "before_cursor_execute")
    def _count(*_args):
        counter["n"] += 1

    return counter


def layer_shares(stats: pstats.Stats) -> list[tuple[str, float]]:
    total = None
    found = {}
    for (filename, _line, function), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
        for label, path_part, name in LAYERS:
            if function == name and path_part in filename.replace(os.sep, "/"):
                found[label] = found.get(label, 0.0) + ct
                if label == "whole request":
                    total = found[label]
    if not total:
        return []
    return [(label, found.get(label, 0.0) / total * 100) for label, _p, _n in LAYERS]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=("me", "toggle", "all"), default="all")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--members", type=int, default=300)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--reuse-db", action="store_true", help="keep the existing bench db")
    args = parser.parse_args(argv)

    env = harness.app_env(secrets.token_hex(32))
    os.environ.update(
        {
            k: env[k]
            for k in ("CONSENT_CENTER_ENV", "SECRET_KEY", "PUBLIC_BASE_URL", "DATABASE_URL",
                      "LEDGER_KEY", "LEDGER_SIGNING_KEY")
        }
    )
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
        calls = make_client(app, creds)
    statements = count_statements(app)

    for name in ("me", "toggle") if args.scenario == "all" else (args.scenario,):
        call = calls[name]
        for _ in range(30):
            call()
        statements["n"] = 0
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.requests):
            call()
        wall = (time.perf_counter() - wall) / args.requests * 1000
        cpu = (time.process_time() - cpu) / args.requests * 1000
        per_request = statements["n"] / args.requests
        print(f"\n=== {name}: {wall:.2f} ms wall, {cpu:.2f} ms CPU, "
              f"{per_request:.1f} SQL statements per request (unprofiled)")  # fmt: skip
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.requests):
            call()
        profiler.disable()
        stats = pstats.Stats(profiler)
        print("share of the profiled request time:")
        for label, share in layer_shares(stats):
            print(f"  {share:5.1f}%  {label}")
        for order in ("cumulative", "tottime"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(args.top)
            body = out.getvalue()
            print(f"top {args.top} by {order}:")
            print(body[body.find("   ncalls") :].rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
