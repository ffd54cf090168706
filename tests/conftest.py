"""Shared fixtures: an app per database backend (SQLite and PostgreSQL, schema made by the
migrations), clients, sign-in, CSRF helpers and factories."""

from __future__ import annotations

import contextvars
import re
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from flask import Flask
from flask.globals import _cv_app
from flask.testing import FlaskClient

from consent_center import clock, create_app
from consent_center.database import dispose_read_engine
from consent_center.extensions import db, limiter
from consent_center.models import Member, PolicyVersion
from consent_center.web.api import api_app
from consent_center.web.api.auth import BLOCKED_ADDRESSES
from tests.support.databases import BACKENDS, empty_tables, migrate_fresh, url_for_backend


class IsolatedClient(FlaskClient):
    """A test client whose requests each run in their own app context, as in production.

    The test body keeps its own app context (for factories and queries); sharing it with
    requests would share `g` (the signed-in user, the CSRF token) and the database session
    between requests and hide missing commits. The test's session is committed before each
    request and expired after it, so both sides see committed data only.
    """

    def open(self, *args, **kwargs):
        if _cv_app.get(None) is not None:
            db.session.commit()
        result = contextvars.copy_context().run(self._open_isolated, *args, **kwargs)
        if _cv_app.get(None) is not None:
            db.session.expire_all()
        return result

    def _open_isolated(self, *args, **kwargs):
        _cv_app.set(None)
        return super().open(*args, **kwargs)


_CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def _session_app(backend: str, tmp_path_factory) -> Iterator[Flask]:
    folder = tmp_path_factory.mktemp(f"db-{backend}")
    app = create_app(
        "testing",
        SQLALCHEMY_DATABASE_URI=url_for_backend(backend, folder),
        DEV_MAILBOX_DIR=str(folder / "mailbox"),
    )
    app.test_client_class = IsolatedClient
    migrate_fresh(app)
    yield app
    with app.app_context():
        db.engine.dispose()
    dispose_read_engine(app)


@pytest.fixture
def app(_session_app: Flask, tmp_path) -> Iterator[Flask]:
    """The app with empty tables, a fresh dev mailbox and this test's config changes undone."""
    app = _session_app
    saved = dict(app.config)
    app.config["DEV_MAILBOX_DIR"] = str(tmp_path / "mailbox")
    empty_tables(app)
    with app.app_context():
        limiter.reset()
    api_app(app).extensions.pop(BLOCKED_ADDRESSES, None)  # its memory of blocked addresses
    ctx = app.app_context()
    ctx.push()
    try:
        yield app
    finally:
        db.session.remove()
        ctx.pop()
        clock.freeze(None)
        app.config.clear()
        app.config.update(saved)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()


def csrf_token(client: FlaskClient, path: str = "/contact") -> str:
    """The CSRF token of the client's session, read from a page as a browser would."""
    response = client.get(path)
    match = _CSRF.search(response.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def post(client: FlaskClient, url: str, data: dict | None = None, *, htmx: bool = False, **kwargs):
    """POST a form with the session's CSRF token, as a no-JS form or as htmx does."""
    token = csrf_token(client)
    headers = dict(kwargs.pop("headers", {}) or {})
    data = dict(data or {})
    if htmx:
        headers.update({"HX-Request": "true", "X-CSRFToken": token})
    else:
        data.setdefault("csrf_token", token)
    return client.post(url, data=data, headers=headers, **kwargs)


@pytest.fixture
def login_as(client: FlaskClient):
    """Sign `member` in on `client` (the code flow itself is tested in test_auth)."""

    def _login(member: Member, on: FlaskClient | None = None) -> FlaskClient:
        from consent_center.services.sessions import open_session

        key = open_session(member)  # a server-side session, as a real sign-in makes
        db.session.commit()
        target = on or client
        with target.session_transaction() as session:
            session.clear()
            session["_user_id"] = key
            session["_fresh"] = True
        return target

    return _login


_counter = iter(range(1, 10**9))


def make_member(**fields) -> Member:
    n = next(_counter)
    values = {
        "name": f"Member {n}",
        "email": f"member{n}@example.org",
        "birth_date": date(1990, 1, 1),
        "locale": "en",
        "email_verified_at": clock.utcnow(),
    }
    values.update(fields)
    member = Member(**values)
    db.session.add(member)
    db.session.commit()
    return member


def make_policy(
    number: int | None = None,
    body: str = "# Policy\n\nWe respect you.\n",
    effective_in_days: int = -1,
    summary: str = "First version",
    changed_purposes: str = "",
    body_zh: str = "",
    summary_zh: str = "",
    title_zh: str = "",
) -> PolicyVersion:
    """A published version, written directly; without Chinese words unless given (as
    versions published before Chinese was required)."""
    now = clock.utcnow()
    number = number or (db.session.query(db.func.max(PolicyVersion.number)).scalar() or 0) + 1
    version = PolicyVersion(
        number=number,
        title="Privacy policy",
        body_md=body,
        summary=summary,
        title_zh=title_zh,
        body_md_zh=body_zh,
        summary_zh=summary_zh,
        changed_purposes=changed_purposes,
        published_at=now,
        effective_at=now + timedelta(days=effective_in_days),
    )
    db.session.add(version)
    db.session.commit()
    return version


def policy_texts(
    body: str = "x", summary: str = "y", *, body_zh: str | None = None,
    summary_zh: str | None = None, title: str = "P",
) -> dict:
    """The words of a version in both languages, for `publish_policy`."""
    from consent_center.domain import Locale
    from consent_center.models.policy import PolicyText

    return {
        Locale.EN: PolicyText(Locale.EN, title, body, summary),
        Locale.ZH: PolicyText(
            Locale.ZH, "隐私政策", body if body_zh is None else body_zh,
            f"{summary}（中文）" if summary_zh is None else summary_zh,
        ),
    }


def publish_notice(app, summary: str = "y", days: int = 8, commit: bool = True, **kwargs):
    """Publish a new policy version `days` ahead through the real service (members notified)."""
    from consent_center.services.policies import publish_policy

    version = publish_policy(
        actor=None,
        texts=policy_texts("x", summary),
        effective_at=clock.utcnow() + timedelta(days=days),
        config=app.config,
        **kwargs,
    )
    if commit:
        db.session.commit()
    return version


@pytest.fixture
def member(app) -> Member:
    return make_member()


@pytest.fixture
def policy(app) -> PolicyVersion:
    return make_policy()


# --- Real parts: an SMTP server and a Twilio stand-in, started by the tests -------------


@pytest.fixture(scope="session")
def _smtp_sink():
    from tests.support.smtp_server import SmtpSink

    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def smtp(app, _smtp_sink):
    """Email goes over real SMTP (Flask-Mail) to a local server; returns the server."""
    _smtp_sink.clear()
    if not _smtp_sink.running:
        _smtp_sink.start()
    app.config.update(MAIL_SERVER=_smtp_sink.host, MAIL_PORT=_smtp_sink.port, MAIL_TIMEOUT=5)
    yield _smtp_sink
    if not _smtp_sink.running:
        _smtp_sink.start()
    _smtp_sink.clear()


@pytest.fixture(scope="session")
def _fake_twilio():
    from tests.support.fake_twilio import FakeTwilio

    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def twilio(app, _fake_twilio, monkeypatch):
    """SMS goes through the real twilio SDK to a local stand-in; returns the stand-in."""
    for name in (
        "TWILIO_EDGE",
        "TWILIO_REGION",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    _fake_twilio.clear()
    app.config.update(
        TWILIO_ACCOUNT_SID=_fake_twilio.account_sid,
        TWILIO_AUTH_TOKEN=_fake_twilio.auth_token,
        TWILIO_FROM_NUMBER="+15005550006",
        TWILIO_API_BASE_URL=_fake_twilio.base_url,
        TWILIO_TIMEOUT=2,
    )
    yield _fake_twilio
    _fake_twilio.clear()
