"""Staff dashboard: the figures (members, consent now and over 90 days, messages, deletion
requests), the accessible chart, and a query count that does not grow with members."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import insert, select

from consent_center import clock
from consent_center.domain import Actor, Method
from consent_center.extensions import db
from consent_center.models import ConsentEvent, ConsentState, Member, Notification, PolicyVersion
from consent_center.services.consents import set_consent
from consent_center.services.dashboard import dashboard
from consent_center.services.deletion import request_deletion
from consent_center.services.erasure import erase_member
from tests.conftest import make_member, make_policy
from tests.support.queries import count_queries
from tests.support.staff import local_midnight, make_staff

TODAY = date(2026, 3, 2)


def noon(days_ago: int) -> datetime:
    """Local noon `days_ago` days before TODAY, as UTC (away from any day boundary)."""
    return local_midnight(TODAY - timedelta(days=days_ago)) + timedelta(hours=12)


def at(days_ago: int) -> None:
    clock.freeze(noon(days_ago))


def consent(member, purpose, granted, days_ago):
    at(days_ago)
    set_consent(member, purpose, granted, actor=Actor.MEMBER, method=Method.FORM)
    db.session.commit()


@pytest.fixture
def story(app):
    """Four members over the last 100 days; a policy change that asks again for trend
    analysis two days ago; one erasure yesterday."""
    staff = make_staff(created_at=noon(300))
    v1 = make_policy(body="v1")
    v1.effective_at = v1.published_at = noon(200)
    v2 = PolicyVersion(
        number=2,
        title="P",
        body_md="v2",
        summary="Trend analysis changes",
        changed_purposes="trend_analysis",
        published_at=noon(40),
        effective_at=local_midnight(TODAY - timedelta(days=2)),
    )
    db.session.add(v2)
    db.session.commit()
    a = make_member(created_at=noon(100))
    b = make_member(created_at=noon(10))
    c = make_member(created_at=noon(10))
    d = make_member(created_at=noon(20))
    consent(a, "trend_analysis", True, 95)
    consent(d, "trend_analysis", True, 20)
    consent(b, "trend_analysis", True, 10)
    consent(b, "trend_analysis", False, 5)
    consent(c, "advertising", True, 3)
    consent(a, "trend_analysis", True, 1)  # answers again after the change
    at(1)
    erase_member(d, actor=staff, reason="test")
    at(30)
    request_deletion(a, requested_by=a, reason=None)  # overdue by now
    at(0)
    request_deletion(c, requested_by=c, reason=None)
    db.session.add(
        Notification(
            channel="sms",
            kind="x",
            dedupe_key="old",
            status="sent",
            created_at=noon(10),
            next_attempt_at=noon(10),
        )
    )
    db.session.commit()
    return staff


def series_at(figures, purpose, days_ago):
    rate = next(p for p in figures.purposes if p.purpose == purpose)
    return rate.series[len(figures.days) - 1 - days_ago]


def test_figures(story):
    figures = dashboard()
    assert figures.days[0] == TODAY - timedelta(days=89) and figures.days[-1] == TODAY
    assert figures.members_by_status == {"active": 4, "erased": 1}
    assert figures.current_members == 4
    members = figures.members_series
    assert (members[0], members[-21], members[-11], members[-2], members[-1]) == (2, 3, 5, 4, 4)
    trend = [series_at(figures, "trend_analysis", k) for k in (89, 20, 10, 5, 3, 2, 1, 0)]
    assert trend == [1 / 2, 2 / 3, 3 / 5, 2 / 5, 2 / 5, 0, 1 / 4, 1 / 4]
    ads = [series_at(figures, "advertising", k) for k in (4, 3, 0)]
    assert ads == [0, 1 / 5, 1 / 4]
    now = {p.purpose: (p.usable, p.rate) for p in figures.purposes}
    assert now == {"trend_analysis": (1, 0.25), "advertising": (1, 0.25)}
    # Messages of the last 7 days only: today's deletion receipt, not last month's nor the
    # old SMS.
    assert figures.notifications == {("email", "pending"): 1}
    assert (figures.open_deletions, figures.overdue_deletions) == (2, 1)


def test_page_is_accessible_and_complete(client, login_as, story):
    login_as(story)
    response = client.get("/staff")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<svg class="chart" role="img" aria-labelledby="chart-title chart-desc"' in page
    assert '<title id="chart-title">' in page and '<desc id="chart-desc">' in page
    assert page.count("<polyline") >= 2
    assert "The chart as a table" in page and "<caption" in page
    assert 'id="consent-summary"' in page and "25.0 % of current members now" in page
    assert "2 open, of which 1 overdue." in page
    for link in (
        "/staff/policies",
        "/staff/members",
        "/staff/deletions",
        "/staff/fan-outs",
        "/staff/notifications",
        "/staff/audit",
        "/staff/incidents",
    ):
        assert f'href="{link}"' in page, link
    assert 'href="/staff/team"' not in page  # admins only
    assert 'aria-current="page"' in page


def seed_members(count: int, offset: int) -> None:
    """`count` members with a consent history each, inserted set-wise (fast)."""
    now = clock.utcnow()
    db.session.execute(
        insert(Member),
        [
            {
                "public_id": uuid.uuid4().hex,
                "name": f"Seed {offset + i}",
                "email": f"seed{offset + i}@example.org",
                "locale": "en",
                "role": "member",
                "status": "active",
                "created_at": now - timedelta(days=i % 120),
                "updated_at": now,
                "notify_email": True,
                "notify_sms": False,
            }
            for i in range(count)
        ],
    )
    ids = db.session.scalars(
        select(Member.id).where(Member.email.like("seed%")).order_by(Member.id)
    ).all()[offset : offset + count]
    events = []
    for i, member_id in enumerate(ids):
        for seq, (purpose, granted) in enumerate(
            [("trend_analysis", True), ("advertising", i % 2 == 0), ("trend_analysis", i % 3 != 0)],
            start=1,
        ):
            events.append(
                {
                    "receipt_id": str(uuid.uuid4()),
                    "member_id": member_id,
                    "seq": seq,
                    "purpose": purpose,
                    "granted": granted,
                    "actor": "member",
                    "method": "form",
                    "created_at": now - timedelta(days=(i + 40 - 10 * seq) % 100, hours=seq),
                    "prev_hash": "0" * 64,
                    "hash": "0" * 64,
                    "key_id": "k1",
                }
            )
    db.session.execute(insert(ConsentEvent), events)
    rows = db.session.execute(
        select(ConsentEvent.member_id, ConsentEvent.purpose, ConsentEvent.id, ConsentEvent.granted)
        .where(ConsentEvent.member_id.in_(ids))
        .order_by(ConsentEvent.seq)
    ).all()
    latest = {(m, p): (event_id, granted) for m, p, event_id, granted in rows}
    db.session.execute(
        insert(ConsentState),
        [
            {"member_id": m, "purpose": p, "granted": g, "event_id": e, "updated_at": now}
            for (m, p), (e, g) in latest.items()
        ],
    )
    db.session.commit()


def test_query_count_does_not_grow_with_members(client, login_as, app):
    clock.freeze(datetime.combine(TODAY, time(4), tzinfo=UTC))
    staff = make_staff()
    make_policy()
    login_as(staff)
    seed_members(10, 0)
    assert client.get("/staff").status_code == 200  # warm-up
    with count_queries() as small:
        assert client.get("/staff").status_code == 200
    seed_members(1990, 10)
    with count_queries() as large:
        response = client.get("/staff")
    assert response.status_code == 200
    assert db.session.scalar(select(db.func.count()).select_from(Member)) == 2001
    assert len(small) == len(large) <= 12, large
