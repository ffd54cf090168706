"""`services/sql.py`: the hot-read executor gives what SQLAlchemy gives."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import g
from sqlalchemy import bindparam, literal, select

from consent_center.database import READ_ENGINE
from consent_center.domain import MemberStatus
from consent_center.extensions import db
from consent_center.models import Member
from consent_center.services.sql import fetch_all
from tests.conftest import make_member


def test_fetch_all_returns_what_sqlalchemy_returns(app, backend):
    make_member(name="Ada", status=MemberStatus.ACTIVE)
    make_member(name="Bo", status=MemberStatus.ACTIVE)
    db.session.commit()
    after = datetime(2000, 1, 1, tzinfo=UTC)
    statement = select(
        Member.public_id,
        Member.name,
        Member.created_at,
        (Member.created_at > bindparam("after", type_=Member.created_at.type)).label("recent"),
        literal(None).label("absent"),
    ).where(Member.name != "Someone else").order_by(Member.name)
    expected = db.session.execute(statement, {"after": after}).all()
    db.session.commit()
    with app.test_request_context("/"):
        g.read_only = True  # as in a @read_only view
        rows = fetch_all(statement, {"after": after})
        assert (READ_ENGINE in app.extensions) == (backend == "postgresql")
    assert [tuple(r) for r in rows] == [tuple(r) for r in expected]
    assert [r.name for r in rows] == ["Ada", "Bo"]
    assert all(r.created_at.tzinfo is UTC and r.recent is True for r in rows)


def test_fetch_all_refuses_a_statement_it_cannot_prepare_once(app, backend):
    statement = select(Member.id).where(Member.name.in_(["Ada", "Bo"]))
    with app.test_request_context("/"):
        g.read_only = True
        if backend == "postgresql":
            with pytest.raises(ValueError, match="IN"):
                fetch_all(statement, {})
        else:
            assert fetch_all(statement, {}) == []


def test_fetch_all_outside_a_read_only_request_sees_the_session_s_own_writes(app):
    make_member(name="Uncommitted")
    db.session.flush()
    rows = fetch_all(select(Member.name).where(Member.name == "Uncommitted"), {})
    assert [r.name for r in rows] == ["Uncommitted"]
    db.session.rollback()
