"""The read pool (`consent_center/database.py`): autocommit connections to DATABASE_READ_URL
(by default the database itself), where psycopg prepares a statement that runs again."""

from __future__ import annotations

import pytest
from flask import has_request_context
from sqlalchemy import event, make_url, select, text
from sqlalchemy.orm import Session

from consent_center import create_app
from consent_center.database import READ_ENGINE, READ_PREPARE_THRESHOLD, dispose_read_engine
from consent_center.extensions import db
from consent_center.models import Member
from consent_center.web.api import api_app
from tests.conftest import make_member
from tests.support.api import bearer, grant, make_token


def test_the_read_pool_prepares_a_statement_that_runs_again(app, backend):
    if backend != "postgresql":
        assert READ_ENGINE not in app.extensions  # SQLite: the one connection, in autocommit
        return
    make_member(name="Ada")
    db.session.commit()
    statement = select(Member.name).where(Member.name == "Ada")
    with app.extensions[READ_ENGINE].connect() as connection:
        assert connection.connection.dbapi_connection.prepare_threshold == READ_PREPARE_THRESHOLD
        for _ in range(READ_PREPARE_THRESHOLD + 1):
            assert connection.execute(statement).scalars().all() == ["Ada"]
        prepared = connection.execute(
            text("SELECT statement FROM pg_prepared_statements")
        ).scalars().all()
    assert any("member.name" in sql for sql in prepared), prepared


def test_a_read_only_request_holds_one_read_connection_and_the_api_makes_no_session(
    app, client, member, policy, login_as, backend
):
    """On the read pool a read-only request checks out one connection and gives it back when
    it ends: /me's session (the signed-in member) and its overview query share it, and the
    API's consents (one Core statement) make no ORM session at all."""
    if backend != "postgresql":
        return
    pool = app.extensions[READ_ENGINE].pool
    token = make_token("consents:read")
    grant(member, "advertising")
    consents = f"/api/v1/members/{member.public_id}/consents"
    assert client.get(consents, headers=bearer(token)).status_code == 200  # notes the token's use
    login_as(member)
    counts = {"checkout": 0, "checkin": 0, "session": 0}

    def counter(name):
        def count(*_args):
            counts[name] += 1

        return count

    def new_session(_session, transaction):
        if transaction.parent is None and has_request_context():  # not the test's own
            counts["session"] += 1

    listeners = [(pool, "checkout", counter("checkout")), (pool, "checkin", counter("checkin")),
                 (Session, "after_transaction_create", new_session)]  # fmt: skip
    for target, name, listener in listeners:
        event.listen(target, name, listener)
    try:
        assert client.get(consents, headers=bearer(token)).status_code == 200
        assert counts == {"checkout": 1, "checkin": 1, "session": 0}
        counts.update(checkout=0, checkin=0, session=0)
        assert client.get("/me").status_code == 200
        assert (counts["checkout"], counts["checkin"]) == (1, 1)
        assert counts["session"] >= 1
    finally:
        for target, name, listener in listeners:
            event.remove(target, name, listener)


def test_the_read_pool_connects_to_database_read_url(app, backend):
    if backend != "postgresql":
        return
    main = app.config["SQLALCHEMY_DATABASE_URI"]
    replica = make_url(main).set(database="cc_replica_never_connected")
    other = create_app(
        "testing",
        SQLALCHEMY_DATABASE_URI=main,
        DATABASE_READ_URL=replica.render_as_string(hide_password=False),
        DEV_MAILBOX_DIR=app.config["DEV_MAILBOX_DIR"],
    )
    try:
        assert other.extensions[READ_ENGINE].url.database == "cc_replica_never_connected"
        with other.app_context():
            assert db.engine.url.database == make_url(main).database
        # The API beside the site reads through the same pool.
        assert api_app(other).extensions[READ_ENGINE] is other.extensions[READ_ENGINE]
    finally:
        with other.app_context():
            db.engine.dispose()
        dispose_read_engine(other)


def test_the_read_pool_defaults_to_the_database_itself(app, backend):
    if backend == "postgresql":
        read_url = app.extensions[READ_ENGINE].url
        assert read_url == make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    assert app.config["DATABASE_READ_URL"] is None


@pytest.mark.parametrize(
    ("database_url", "read_url", "refused"),
    [
        ("sqlite://", "postgresql://replica.internal/cc", True),
        ("postgresql://primary.internal/cc", "sqlite://", True),
        ("postgresql://primary.internal/cc", "postgresql://replica.internal/cc", False),
        ("postgresql://primary.internal/cc", None, False),
    ],
)
def test_production_takes_a_read_url_only_beside_postgresql(
    monkeypatch, database_url, read_url, refused
):
    from consent_center.config import ProductionConfig
    from tests.test_app import PRODUCTION_ENV

    for name, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATABASE_URL", database_url)
    if read_url is None:
        monkeypatch.delenv("DATABASE_READ_URL", raising=False)
    else:
        monkeypatch.setenv("DATABASE_READ_URL", read_url)
    config = ProductionConfig()
    if refused:
        with pytest.raises(RuntimeError, match="DATABASE_READ_URL"):
            config.validate()
    else:
        config.validate()
