"""App-wide behaviour: health, security headers, configuration safety, error pages."""

from __future__ import annotations

import pytest

from consent_center import create_app
from consent_center.config import DEFAULT_SECRET
from tests.support.writes import nothing_written


def test_healthz_names_backend_and_reachability(client, backend):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {
        "status": "ok",
        "database": {"backend": backend, "reachable": True},
    }


def test_healthz_503_when_database_unreachable(app, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from consent_center.extensions import db

    def broken(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(db.session, "execute", broken)
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["database"]["reachable"] is False


def test_strict_security_headers(client):
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_session_cookie_is_httponly_and_samesite(client):
    from tests.conftest import csrf_token

    csrf_token(client)
    response = client.get("/sign-in")
    cookie = client.get_cookie("cc_session")
    assert cookie is not None
    assert cookie.http_only and cookie.same_site == "Lax"
    assert response.status_code == 200


@pytest.mark.parametrize("secret", [None, DEFAULT_SECRET, "short"])
def test_production_refuses_to_start_without_a_real_secret(monkeypatch, secret):
    monkeypatch.setenv("CONSENT_CENTER_ENV", "production")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://privacy.example.com")
    if secret is None:
        monkeypatch.delenv("SECRET_KEY", raising=False)
    else:
        monkeypatch.setenv("SECRET_KEY", secret)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app()


def test_production_starts_with_a_real_secret_and_secure_cookies(monkeypatch):
    monkeypatch.setenv("CONSENT_CENTER_ENV", "production")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://privacy.example.com")
    monkeypatch.setenv("SECRET_KEY", "x" * 64)
    monkeypatch.setenv("DATABASE_URL", "sqlite://")
    app = create_app()
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["DEV_MAILBOX"] is False
    assert app.test_client().get("/dev/mailbox").status_code == 404


def test_unknown_page_is_a_friendly_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert b"<html" in response.data and b"not be yours" in response.data


def test_post_without_csrf_token_is_refused(client):
    with nothing_written():
        response = client.post("/sign-in", data={"identifier": "a@example.org"})
    assert response.status_code == 400
    assert b"expired" in response.data


def test_htmx_vendored_locally_and_referenced_without_cdn(client, app):
    page = client.get("/").get_data(as_text=True)
    version = app.config["HTMX_VERSION"]
    assert f"/static/vendor/htmx/{version}/htmx.min.js" in page
    assert "https://" not in page.split("<body")[0]
    response = client.get(f"/static/vendor/htmx/{version}/htmx.min.js")
    assert response.status_code == 200
    response.close()


def test_proxy_fix_trusts_configured_hops(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "sqlite://")
    app = create_app("development", PROXY_FIX_HOPS=1, DEV_MAILBOX=False)
    seen = {}

    @app.get("/_probe")
    def probe():
        from flask import request

        seen.update(ip=request.remote_addr, scheme=request.scheme)
        return "ok"

    app.test_client().get("/_probe", headers={"X-Forwarded-For": "203.0.113.9",
                                               "X-Forwarded-Proto": "https"})
    assert seen == {"ip": "203.0.113.9", "scheme": "https"}


def test_rate_limits_work_with_redis_storage(app, client):
    """Several web processes share limits through Redis (RATELIMIT_STORAGE_URI)."""
    import redis

    from tests.conftest import post
    from tests.support.databases import REDIS_URL, clear_redis_keys, redis_key_prefix

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()
    except redis.ConnectionError:
        pytest.fail("Redis must run on 127.0.0.1:6379 for this test")
    prefix = redis_key_prefix()
    shared = {"RATELIMIT_STORAGE_URI": REDIS_URL,
              "RATELIMIT_KEY_PREFIX": prefix,
              "SIGN_IN_RATE_LIMIT_IP": "2 per minute",
              "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
              "DEV_MAILBOX_DIR": app.config["DEV_MAILBOX_DIR"]}
    clear_redis_keys(prefix)
    one, two = create_app("testing", **shared), create_app("testing", **shared)
    statuses = []
    for web in (one, two, one):
        c = web.test_client()
        statuses.append(post(c, "/sign-in", {"identifier": "x@example.org"}).status_code)
    assert statuses == [303, 303, 429]
    # The counts live under this worker's prefix only.
    shared_redis = redis.Redis.from_url(REDIS_URL)
    assert list(shared_redis.scan_iter(match=f"*{prefix}*"))
    shared_redis.close()
    clear_redis_keys(prefix)
    for web in (one, two):
        with web.app_context():
            from consent_center.extensions import db

            db.engine.dispose()


def test_405_names_the_allowed_methods(client):
    response = client.get("/sign-out")
    assert response.status_code == 405 and "POST" in response.headers["Allow"]


def test_read_only_views_run_without_a_transaction_and_refuse_orm_writes(app):
    """`@read_only` views run in autocommit (no BEGIN/ROLLBACK, prepared statements kept);
    an ORM write in one is a programming error that fails loudly, never a silent write."""
    from flask import g

    from consent_center.database import READ_ENGINE, dispose_read_engine
    from consent_center.extensions import db
    from consent_center.models import ApiToken
    from consent_center.web.transactions import read_only

    fresh = create_app("testing", SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
                       DEV_MAILBOX_DIR=app.config["DEV_MAILBOX_DIR"])

    @fresh.get("/_probe/read")
    @read_only
    def reads():
        db.session.execute(db.select(ApiToken.id)).all()
        raw = db.session.connection().connection.dbapi_connection
        sqlite = db.engine.dialect.name == "sqlite"
        autocommit = raw.isolation_level is None if sqlite else raw.autocommit
        # On PostgreSQL the statements go to the read pool (autocommit for life).
        pool = "read" if db.session.get_bind() is fresh.extensions.get(READ_ENGINE) else "main"
        return {"read_only": g.read_only, "autocommit": autocommit, "pool": pool}

    @fresh.get("/_probe/write")
    @read_only
    def writes():
        db.session.add(ApiToken(name="never", token_hash="x" * 64, scopes=""))
        db.session.flush()
        return "written"

    client = fresh.test_client()
    pool = "main" if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite") else "read"
    assert client.get("/_probe/read").json == {"read_only": True, "autocommit": True, "pool": pool}
    with pytest.raises(RuntimeError, match="marked @read_only"):
        client.get("/_probe/write")
    with fresh.app_context():
        assert db.session.scalars(db.select(ApiToken).filter_by(name="never")).first() is None
        db.session.remove()  # give the connection back before the pool goes
        db.engine.dispose()
    dispose_read_engine(fresh)


def test_no_request_pays_for_limits_it_does_not_have(app):
    """Flask-Limiter's check-every-request hook is gone: the app declares no default,
    application or blueprint-wide limits (they would need it), only per-view decorators and
    the API's own per-token check."""
    from consent_center.extensions import limiter

    assert limiter._check_request_limit not in app.before_request_funcs[None]
    manager = limiter.limit_manager
    assert not manager.default_limits and not manager.application_limits
    assert not manager._blueprint_limits
