"""The floors: the least work each benchmarked request could do, served like the app.

Each is what one request of Consent Center must do at the very least, with every framework
layer that the real request adds taken away, so `bench/floor_bench.py` can say how far a
target is from what is possible at all on this machine:

* `select1`: Flask, one `SELECT 1` on a psycopg connection (autocommit, prepared);
* `select1_redis`: the same plus one Redis `INCR` (a shared rate-limit counter);
* `consents_bare`: no Flask at all: a hand-written WSGI function that counts the request in
  Redis, runs the API's real consents query (the token and the member, compiled from
  `services/downstream.py`) and writes the JSON document;
* `consents_stack`: the API's consents request on the stack issue 16 prescribes and nothing
  else: Flask (no hooks, session, CSRF, logging or metrics), the rate-limit counter through
  `limits` (Flask-Limiter's storage and strategy), the app's real statement executed by
  SQLAlchemy Core on a pool like the read pool (autocommit, psycopg preparing it), and the
  answer by `jsonify`;
* `toggle_sql`: Flask, the consent toggle's own SQL in one transaction on psycopg (the member,
  its lock, the chain tails, the event, the state upsert, the change event, the webhook
  subscriptions, the audit entry, the switch's view), with no session, CSRF, ORM or template;
* `site_bare`: the app's own site (`GET /me`, the consent toggle) with every layer the app
  adds around a request taken away (the request observer, the guards, the security headers;
  see `_site_bare_app`): the app's factory, views, services, queries and templates on Flask,
  Flask-Login (the member loaded through the ORM), Flask-Babel, Flask-WTF and
  Flask-SQLAlchemy, and nothing else.

Served by gunicorn from `bench/` (`floor_apps:select1` and so on) with `FLOOR_DATABASE_URL`
and `FLOOR_REDIS_URL` set by the harness. Never part of the product.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from datetime import UTC, date, datetime

import psycopg
import redis
from flask import Flask, jsonify, request

DB_URL = os.environ.get("FLOOR_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("FLOOR_REDIS_URL", "redis://127.0.0.1:6379/14")
_state: dict = {}


def _db() -> psycopg.Connection:
    if "db" not in _state:
        _state["db"] = psycopg.connect(DB_URL, autocommit=True, prepare_threshold=0)
    return _state["db"]


def _redis() -> redis.Redis:
    if "redis" not in _state:
        _state["redis"] = redis.Redis.from_url(REDIS_URL)
    return _state["redis"]


def _count(key: str) -> None:
    key = f"floor:{key}:{int(time.time() // 60)}"
    if _redis().incr(key) == 1:
        _redis().expire(key, 120)


select1 = Flask("select1")


@select1.get("/")
def _select1():
    return {"ok": _db().execute("SELECT 1").fetchone()[0]}


select1_redis = Flask("select1_redis")


@select1_redis.get("/")
def _select1_redis():
    _count("select1")
    return {"ok": _db().execute("SELECT 1").fetchone()[0]}


def _consents_query() -> tuple[str, dict]:
    """The API's query as the app compiles it (its SQL and its constant parameters)."""
    if "consents" not in _state:
        os.environ["DATABASE_URL"] = DB_URL
        from consent_center import create_app
        from consent_center.extensions import db
        from consent_center.services import downstream

        app = create_app("production")
        with app.app_context():
            statement = downstream.token_and_consents_statement()
            compiled = statement.compile(dialect=db.engine.dialect)
            given = {"token_hash": "", "public_id": "", "now": None, "cutoff": None}
            _state["consents"] = (compiled.string, compiled.construct_params(given))
            _state["minor_age"] = app.config["MINOR_AGE"]
    return _state["consents"]


def consents_bare(environ, start_response):
    sql, constants = _consents_query()
    parts = environ["PATH_INFO"].split("/")  # /api/v1/members/<id>/consents
    if len(parts) != 6:
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b"{}"]
    member_id = parts[4]
    token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")[2]
    token_hash = hashlib.sha256(token.encode()).hexdigest()
    _count(token_hash[:32])
    now = datetime.now(UTC)
    age = _state["minor_age"]
    params = dict(constants, token_hash=token_hash, public_id=member_id, now=now)
    params["cutoff"] = date(now.year - age, now.month, min(now.day, 28))
    cursor = _db().execute(sql, params, prepare=True)
    names = [column.name for column in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    if not rows or rows[0]["member_id"] is None:
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b"{}"]
    body = json.dumps(
        {
            "member_id": member_id,
            "consents": [
                {
                    "purpose": r["purpose"],
                    "state": "granted" if r["granted"] else "withdrawn",
                    "policy_version": r["number"],
                    "changed_at": r["updated_at"].isoformat() if r["updated_at"] else None,
                    "usable_now": bool(r["usable"]),
                    "needs_reconsent": bool(r["stale"]),
                }
                for r in rows
                if r["purpose"] is not None
            ],
        }
    ).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


consents_stack = Flask("consents_stack")


def _stack() -> dict:
    if "stack" not in _state:
        from limits import parse
        from limits.storage import storage_from_string
        from limits.strategies import FixedWindowRateLimiter
        from sqlalchemy import create_engine

        os.environ["DATABASE_URL"] = DB_URL
        from consent_center import create_app
        from consent_center.services import downstream

        app = create_app("production")
        with app.app_context():
            statement = downstream.token_and_consents_statement()
        engine = create_engine(
            DB_URL.replace("postgresql://", "postgresql+psycopg://"),
            isolation_level="AUTOCOMMIT", pool_reset_on_return=None,
            connect_args={"prepare_threshold": 1},
        )
        _state["stack"] = {
            "statement": statement, "engine": engine, "minor_age": app.config["MINOR_AGE"],
            "limiter": FixedWindowRateLimiter(storage_from_string(REDIS_URL)),
            "limit": parse("1000000000 per minute"),
        }
    return _state["stack"]


@consents_stack.get("/api/v1/members/<member_id>/consents")
def _consents_stack(member_id: str):
    stack = _stack()
    token = request.headers.get("Authorization", "").partition(" ")[2]
    token_hash = hashlib.sha256(token.encode()).hexdigest()
    if not stack["limiter"].hit(stack["limit"], "api", token_hash[:32]):
        return {"title": "Too many requests"}, 429
    return _stack_answer(stack, member_id, token_hash)


# The same with the counter as one Redis INCR (and EXPIRE on a window's first hit) instead of
# `limits`: how much of the stack's cost is the limiter library.
consents_stack_incr = Flask("consents_stack_incr")


@consents_stack_incr.get("/api/v1/members/<member_id>/consents")
def _consents_stack_incr(member_id: str):
    stack = _stack()
    token = request.headers.get("Authorization", "").partition(" ")[2]
    token_hash = hashlib.sha256(token.encode()).hexdigest()
    _count(token_hash[:32])
    return _stack_answer(stack, member_id, token_hash)


def _stack_answer(stack: dict, member_id: str, token_hash: str):
    now = datetime.now(UTC)
    cutoff = date(now.year - stack["minor_age"], now.month, min(now.day, 28))
    with stack["engine"].connect() as connection:
        rows = connection.execute(
            stack["statement"],
            {"token_hash": token_hash, "public_id": member_id, "now": now, "cutoff": cutoff},
        ).all()
    if not rows or rows[0].member_id is None:
        return {}, 404
    return jsonify(
        {
            "member_id": member_id,
            "consents": [
                {
                    "purpose": r.purpose,
                    "state": "granted" if r.granted else "withdrawn",
                    "policy_version": r.number,
                    "changed_at": r.updated_at.isoformat() if r.updated_at else None,
                    "usable_now": bool(r.usable),
                    "needs_reconsent": bool(r.stale),
                }
                for r in rows
                if r.purpose is not None
            ],
        }
    )


toggle_sql = Flask("toggle_sql")
GENESIS = "0" * 64


def _toggle_connection() -> psycopg.Connection:
    if "toggle" not in _state:
        _state["toggle"] = psycopg.connect(DB_URL, prepare_threshold=0)
    return _state["toggle"]


@toggle_sql.post("/me/consents/<purpose>")
def _toggle(purpose: str):
    conn = _toggle_connection()
    public_id = request.cookies["member"]
    granted = request.form.get("granted") == "1"
    now = datetime.now(UTC)
    run = conn.execute
    with conn.transaction():
        member = run(
            "SELECT id, public_id, name, gender, email, phone, birth_date, locale, role, status,"
            " email_verified_at, phone_verified_at, created_at, updated_at, erased_at,"
            " notify_email, notify_sms, sms_opted_out_at, policy_seen_number,"
            " confirm_guardian_choices FROM member WHERE public_id = %s",
            (public_id,),
        ).fetchone()
        member_id = member[0]
        # The lock, the chain head and the policy in force in one statement (the app's way).
        head = run(
            "SELECT ledger_seq, ledger_hash, (SELECT id FROM policy_version WHERE"
            " published_at IS NOT NULL AND effective_at <= %(now)s ORDER BY effective_at DESC"
            " LIMIT 1) FROM member WHERE id = %(m)s FOR UPDATE OF member",
            {"m": member_id, "now": now},
        ).fetchone()
        seq = head[0] + 1
        digest = hashlib.sha256(
            json.dumps([member_id, seq, purpose, granted, now.isoformat(), head[1]]).encode()
        ).hexdigest()
        event_id = run(
            "INSERT INTO consent_event (receipt_id, member_id, seq, purpose, granted,"
            " policy_version_id, actor, actor_member_id, method, created_at, prev_hash, hash,"
            " key_id) VALUES (%s, %s, %s, %s, %s, %s, 'member', %s, 'htmx', %s, %s, %s, 'floor')"
            " RETURNING id",
            (str(uuid.uuid4()), member_id, seq, purpose, granted, head[2], member_id, now,
             head[1] or GENESIS, digest),
        ).fetchone()[0]  # fmt: skip
        run(
            "INSERT INTO consent_state (member_id, purpose, granted, event_id,"
            " policy_version_id, updated_at) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (member_id, purpose) DO UPDATE SET granted = excluded.granted,"
            " event_id = excluded.event_id, policy_version_id = excluded.policy_version_id,"
            " updated_at = excluded.updated_at",
            (member_id, purpose, granted, event_id, head[2], now),
        )
        run(
            "UPDATE member SET ledger_seq = %s, ledger_hash = %s WHERE id = %s",
            (seq, digest, member_id),
        )
        view = [(purpose, granted, now)]
    return f'<div class="switch">{purpose} {granted} {len(view)}</div>'


# --- the site, bare ---------------------------------------------------------------------
# `/me` and the toggle on the stack, with none of the app's own layers: the app's factory
# builds it (Flask, Flask-Login loading the member through the ORM by the session's key,
# Flask-Babel, Flask-WTF, Flask-SQLAlchemy, the read pool), the views are the app's own (each
# one service call, the app's queries and templates), and what the app adds around every
# request is taken away: the request observer (request id, metrics, access log) and the API's
# mount, the app's before-request guards (body size, unreadable input, GPC), the after-request
# hooks (security headers and CSP, Flask-Limiter's headers, Flask-Login's remember cookie) and
# the teardown hooks. Kept: Flask-WTF's CSRF check (the stack's; the toggle's form relies on
# it for the htmx header), the member pages' own rule (signed in, not awaiting a guardian) and
# the read-only start (a read-only page runs without a transaction: less work, not more).
_SITE_HOOKS_KEPT = (
    "flask_wtf.csrf", "consent_center.web.transactions", "consent_center.web.member.views"
)


# Which of the app's layers the bare site takes away (`FLOOR_SITE_STRIP`, comma-separated;
# default all): to find which of them a difference between the app and the floor comes from.
_SITE_LAYERS = ("observer", "before", "after", "teardown")


def _site_bare_app() -> Flask:
    from consent_center import create_app

    strip = os.environ.get("FLOOR_SITE_STRIP", ",".join(_SITE_LAYERS)).split(",")
    unknown = set(strip) - set(_SITE_LAYERS) - {""}
    if unknown:
        raise ValueError(f"FLOOR_SITE_STRIP: no such layer {', '.join(sorted(unknown))}")
    app = create_app("production")
    if "observer" in strip:
        app.__dict__.pop("wsgi_app", None)  # Flask's own wsgi_app, no middleware around it
    if "before" in strip:
        app.before_request_funcs = {
            scope: [f for f in hooks if getattr(f, "__module__", "") in _SITE_HOOKS_KEPT]
            for scope, hooks in app.before_request_funcs.items()
        }
    if "after" in strip:
        app.after_request_funcs = {}
    if "teardown" in strip:
        app.teardown_request_funcs = {}
    return app


def __getattr__(name: str):
    # `floor_apps:site_bare` is built when gunicorn's worker loads it, as `wsgi:app` is (the
    # other floors build nothing at import).
    if name == "site_bare":
        globals()[name] = _site_bare_app()
        return globals()[name]
    raise AttributeError(name)
