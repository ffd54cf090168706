"""Staff: active member search (bookmarkable, htmx-enhanced) and the read-only member page,
whose viewing is audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from consent_center import clock
from consent_center.domain import Actor, Method
from consent_center.extensions import db
from consent_center.models import AuditEvent
from consent_center.services.consents import set_consent
from consent_center.services.deletion import request_deletion
from tests.conftest import make_member, make_policy, post
from tests.support.staff import make_staff
from tests.support.writes import nothing_written


@pytest.fixture
def staff(app):
    return make_staff(name="Sam Staff", email="sam@staff.example")


@pytest.fixture
def people(app):
    return {
        "li": make_member(name="Li Wei", email="li.wei@example.cn", phone="+8613912345678"),
        "ana": make_member(name="Ana Lima", email="ana@example.br"),
        "bo": make_member(name="Bo Chen", email="bo@example.cn"),
    }


def names(page: str, people: dict) -> set[str]:
    return {key for key, m in people.items() if m.name in page}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("li", {"li", "ana"}),  # name contains (Li Wei, Ana Lima)
        ("LI WEI", {"li"}),  # case-insensitive
        ("example.cn", {"li", "bo"}),  # email
        ("3912 3456", {"li"}),  # phone digits, however typed
        ("zzz", set()),
    ],
)
def test_search_by_name_email_phone(client, login_as, staff, people, query, expected):
    login_as(staff)
    response = client.get("/staff/members", query_string={"q": query})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert names(page, people) == expected
    if not expected:
        assert "No member matches" in page


def test_search_by_public_id_and_bookmarkable_url(client, login_as, staff, people):
    login_as(staff)
    target = people["bo"]
    page = client.get(f"/staff/members?q={target.public_id[:10]}").get_data(as_text=True)
    assert names(page, people) == {"bo"}
    assert f'href="/staff/members/{target.public_id}"' in page
    assert f'href="/staff/members?q={target.public_id[:10]}"' in page  # link to this search
    assert f'value="{target.public_id[:10]}"' in page  # the form keeps the query


def test_search_as_you_type_answers_a_fragment(client, login_as, staff, people):
    login_as(staff)
    page = client.get("/staff/members").get_data(as_text=True)
    assert 'method="get"' in page and 'hx-get="/staff/members"' in page
    assert 'hx-trigger="input changed delay:300ms"' in page
    response = client.get("/staff/members?q=wei", headers={"HX-Request": "true"})
    assert response.status_code == 200 and "HX-Request" in response.headers["Vary"]
    fragment = response.get_data(as_text=True)
    assert "<html" not in fragment and fragment.lstrip().startswith('<section id="member-results"')
    assert "Li Wei" in fragment


def test_short_query_lists_nobody(client, login_as, staff, people):
    login_as(staff)
    page = client.get("/staff/members?q=l").get_data(as_text=True)
    assert names(page, people) == set() and "Type a name" in page


def test_member_page_shows_the_record_and_audits_the_view(client, login_as, staff, people):
    make_policy()
    li = people["li"]
    set_consent(li, "advertising", True, actor=Actor.MEMBER, method=Method.FORM)
    request_deletion(li, requested_by=li, reason="moving abroad")
    db.session.commit()
    login_as(staff)
    response = client.get(f"/staff/members/{li.public_id}?reason=member_request")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Li Wei" in page and li.email in page and "+8613912345678" in page
    assert "Consent ledger" in page and "Advertising planning" in page and "Given" in page
    assert "Deletion request received" in page  # the message sent about the request
    assert "Your profile" in page and "Your consent history" in page  # the inventory view
    assert "/staff/deletions/" in page
    viewed = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "staff.member_viewed")
    ).one()
    assert (viewed.actor_member_id, viewed.subject_member_id) == (staff.id, li.id)
    with nothing_written():
        assert client.get("/staff/members/nobody-here?reason=security").status_code == 404


def test_member_page_shows_guardian_links(client, login_as, staff, people):
    from consent_center import models
    minor = make_member(name="Xiao Ming", status="awaiting_guardian")
    guardian = people["li"]
    db.session.add(
        models.GuardianLink(
            minor_id=minor.id,
            guardian_id=guardian.id,
            status="approved",
            contact_channel="email",
            contact=guardian.email,
            invited_at=clock.utcnow(),
        )
    )
    db.session.commit()
    login_as(staff)
    page = client.get(f"/staff/members/{minor.public_id}?reason=legal").get_data(as_text=True)
    assert "Guardian links" in page and "Guardian:" in page and "Li Wei" in page
    page = client.get(f"/staff/members/{guardian.public_id}?reason=legal").get_data(as_text=True)
    assert "Ward:" in page and "Xiao Ming" in page


def test_staff_say_why_before_a_record_opens(client, login_as, staff, people):
    li = people["li"]
    login_as(staff)
    with nothing_written():
        page = client.get(f"/staff/members/{li.public_id}").get_data(as_text=True)
        assert "Why are you opening this record?" in page and "Li Wei" not in page
        page = client.get(f"/staff/members/{li.public_id}?reason=curious").get_data(as_text=True)
        assert "Why are you opening this record?" in page and li.email not in page
    client.get(f"/staff/members/{li.public_id}?reason=security")
    viewed = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "staff.member_viewed")).one()
    assert viewed.details == {"reason": "security", "role": "staff"}


def test_who_looked_at_my_data(client, app, login_as, staff, people):
    li, other = people["li"], people["ana"]
    staff_client = login_as(staff, on=app.test_client())
    staff_client.get(f"/staff/members/{li.public_id}?reason=member_request")
    staff_client.get(f"/staff/members/{other.public_id}?reason=security")  # not Li's
    deletion = request_deletion(li, requested_by=li, reason=None)
    db.session.commit()
    assert staff_client.get(f"/staff/deletions/{deletion.public_id}").status_code == 200
    login_as(li)
    overview = client.get("/me").get_data(as_text=True)
    assert 'href="/me/access-log"' in overview
    page = client.get("/me/access-log").get_data(as_text=True)
    assert "Who looked at my data" in page
    assert "Answering a request or question from the member" in page
    assert "Deciding a deletion request" in page
    assert "Investigating a security problem" not in page  # another member's record
    assert staff.name not in page and staff.email not in page  # the role, never the name
    assert page.count("<td>Staff</td>") == 2
    post(client, "/language", {"locale": "zh_Hans_CN", "next": "/"})
    page = client.get("/me/access-log").get_data(as_text=True)
    assert "谁查看了我的数据" in page and "处理删除请求" in page


def test_an_untouched_record_says_so(client, login_as, people):
    login_as(people["li"])
    page = client.get("/me/access-log").get_data(as_text=True)
    assert "has opened your record" in page and "<table" not in page
