"""App-wide behaviour: health, security headers, configuration safety, error pages."""

from __future__ import annotations

import pytest

from consent_center import create_app
from consent_center.config import DEFAULT_SECRET
from tests.support.writes import nothing_written


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


PRODUCTION_ENV = {
    "CONSENT_CENTER_ENV": "production",
    "SECRET_KEY": "0f3a9c1e7b52d84a6e19f0c3b7d5a28e4c91f06b3d7a52e8c4f1096b3a7d5e2c",
    "PUBLIC_BASE_URL": "https://privacy.example.com",
    "MAIL_SERVER": "smtp.example.com",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "twilio-token",
    "TWILIO_FROM_NUMBER": "+15005550006",
    "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/15",
    "DATABASE_URL": "sqlite://",
    "LEDGER_KEY": "7c2e9a41d05b38f6a1e4c97d20b5f83e6a09c4d1b7e25f80a3c6d94e1b07f52a",
    "LEDGER_SIGNING_KEY": "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIHq2aJGkSvNZQqxP3dzVPPYOuc4iR8pV8MmAZiMjAbGx\n"
    "-----END PRIVATE KEY-----\n",
}


@pytest.fixture
def production_env(monkeypatch):
    """A complete production environment, built for this test; `set(name, value)` changes
    one variable (None removes it)."""
    for name in ("CONSENT_CENTER_ENV", "SMS_ENABLED", *PRODUCTION_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(name, value)

    def change(name: str, value: str | None) -> None:
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)

    return change


@pytest.mark.parametrize(
    "secret",
    [
        None,
        DEFAULT_SECRET,
        "short",
        "a" * 64,
        "abab" * 16,
        "0123456789abcdef" * 2,
        "0123456789abcdefghijklmnopqrstuvwxyz",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabcde",
    ],
)
def test_production_refuses_a_missing_short_or_low_entropy_secret(production_env, secret):
    production_env("SECRET_KEY", secret)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app()


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("PUBLIC_BASE_URL", None, "PUBLIC_BASE_URL"),
        ("PUBLIC_BASE_URL", "http://privacy.example.com", "PUBLIC_BASE_URL"),
        ("PUBLIC_BASE_URL", "https://", "PUBLIC_BASE_URL"),
        ("MAIL_SERVER", None, "MAIL_SERVER"),
        ("TWILIO_ACCOUNT_SID", None, "TWILIO_ACCOUNT_SID"),
        ("TWILIO_AUTH_TOKEN", None, "TWILIO_AUTH_TOKEN"),
        ("TWILIO_FROM_NUMBER", None, "TWILIO_FROM_NUMBER"),
        ("RATELIMIT_STORAGE_URI", None, "RATELIMIT_STORAGE_URI"),
        ("RATELIMIT_STORAGE_URI", "memory://", "RATELIMIT_STORAGE_URI"),
        ("LEDGER_RETENTION_YEARS", "2", "LEDGER_RETENTION_YEARS"),
    ],
)
def test_production_refuses_to_start_without_each_setting(production_env, name, value, named):
    production_env(name, value)
    with pytest.raises(RuntimeError, match=named):
        create_app()


def test_production_refuses_a_mail_login_without_tls(production_env):
    production_env("MAIL_USERNAME", "mailer")
    production_env("MAIL_PASSWORD", "mailer-password")
    with pytest.raises(RuntimeError, match="MAIL_USE_TLS"):
        create_app()
    production_env("MAIL_USE_TLS", "true")
    assert create_app().config["MAIL_USE_TLS"] is True


def test_production_without_sms_needs_no_twilio_and_sends_no_sms(production_env):
    from consent_center.notify.delivery import transport_for

    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER"):
        production_env(name, None)
    with pytest.raises(RuntimeError, match="SMS_ENABLED=false"):
        create_app()
    production_env("SMS_ENABLED", "false")
    app = create_app()
    with app.app_context():
        [result] = transport_for("sms").send_each([None])
    assert (result.ok, result.transient) == (False, False) and "SMS_ENABLED" in result.error


def test_production_is_the_default_environment(production_env):
    production_env("CONSENT_CENTER_ENV", None)
    assert create_app().config["ENV_NAME"] == "production"
    production_env("SECRET_KEY", None)
    with pytest.raises(RuntimeError, match="CONSENT_CENTER_ENV"):
        create_app()


def test_production_starts_with_its_settings_secure_cookies_and_no_dev_mailbox(production_env):
    from consent_center.notify.delivery import transport_for

    app = create_app()
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["DEV_MAILBOX"] is False and app.config["WEBHOOK_ALLOW_PRIVATE"] is False
    assert "dev" not in app.blueprints
    assert app.test_client().get("/dev/mailbox").status_code == 404
    with app.app_context():
        assert type(transport_for("email")).__name__ == "SmtpTransport"


def test_a_server_started_with_an_empty_environment_refuses_to_run(tmp_path):
    """`gunicorn wsgi:app` imports wsgi.py: with no environment at all it must fail, naming
    what is missing, rather than serve the development mode (dev mailbox, public key)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        cwd=root,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    for name in ("CONSENT_CENTER_ENV", "SECRET_KEY", "PUBLIC_BASE_URL", "MAIL_SERVER",
                 "TWILIO_ACCOUNT_SID", "RATELIMIT_STORAGE_URI"):
        assert name in proc.stderr, name


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
        read_pool = fresh.extensions.get(READ_ENGINE)
        pool = "read" if db.session.get_bind().engine is read_pool else "main"
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


class CountingStream:
    """A request body that counts what the app reads of it."""

    def __init__(self, size: int) -> None:
        self.left, self.read_bytes = size, 0

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.left -= n
        self.read_bytes += n
        return b"x" * n

    def readline(self, n: int = -1) -> bytes:
        return self.read(n)


THIRTY_MB = 30 * 1024 * 1024


@pytest.mark.parametrize(
    ("headers", "expect"),
    [
        ({}, ("<html", "Too large", "more than we accept")),
        ({"Accept-Language": "zh-CN,zh;q=0.9"}, ('<html lang="zh-Hans">', "内容过大", "超出")),
        ({"HX-Request": "true"}, ('role="alert"', "Too large")),
    ],
)
def test_a_body_over_max_content_length_is_413_before_it_is_read(client, headers, expect):
    from sqlalchemy import func, select

    from consent_center.extensions import db
    from consent_center.models import Notification

    assert client.application.config["MAX_CONTENT_LENGTH"] == 1024 * 1024  # the default
    body = CountingStream(THIRTY_MB)
    response = client.post(
        "/contact",
        content_type="application/x-www-form-urlencoded",
        headers=headers,
        environ_overrides={"wsgi.input": body, "CONTENT_LENGTH": str(THIRTY_MB)},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 413 and body.read_bytes == 0
    for text in expect:
        assert text in page
    if "HX-Request" in headers:
        assert "<html" not in page
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 0


def test_a_body_over_max_content_length_is_a_problem_document_on_the_api(client):
    response = client.post(
        "/api/v1/consent-events",
        content_type="application/json",
        environ_overrides={
            "wsgi.input": CountingStream(THIRTY_MB),
            "CONTENT_LENGTH": str(THIRTY_MB),
        },
    )
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json" and response.json["status"] == 413


def test_a_chunked_body_is_cut_off_at_max_content_length(client, app):
    """Without a Content-Length (chunked), Werkzeug stops reading once past the limit."""
    from sqlalchemy import func, select

    from consent_center.extensions import db
    from consent_center.models import Notification

    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    body = CountingStream(THIRTY_MB)
    response = client.post(
        "/contact",
        content_type="application/x-www-form-urlencoded",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input": body, "wsgi.input_terminated": True},
    )
    assert response.request.content_length is None
    assert response.status_code == 413 and "Too large" in response.get_data(as_text=True)
    assert body.read_bytes <= 128 * 1024
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 0
    small = client.post(
        "/contact",
        content_type="application/x-www-form-urlencoded",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input": CountingStream(1000), "wsgi.input_terminated": True},
    )
    assert small.status_code == 400 and b"expired" in small.data  # read, then CSRF refuses


def test_max_content_length_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MAX_CONTENT_LENGTH", "2048")
    assert create_app("testing").config["MAX_CONTENT_LENGTH"] == 2048
