"""Audiences: every member usable for a purpose now, and nobody else, streamed as NDJSON or
CSV, in pages with keyset cursors or whole."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import pytest

from consent_center import clock
from consent_center.domain import MemberStatus
from consent_center.extensions import db
from consent_center.services.erasure import erase_member
from tests.conftest import make_member, make_policy
from tests.support.api import bearer, grant, make_token
from tests.support.writes import nothing_written

AUDIENCE = "/api/v1/audiences/{}"


def ndjson(response) -> list[dict]:
    assert response.status_code == 200, response.data
    assert response.mimetype == "application/x-ndjson"
    return [json.loads(line) for line in response.get_data(as_text=True).splitlines()]


def audience(client, token, purpose, **params) -> list[str]:
    response = client.get(AUDIENCE.format(purpose), headers=bearer(token), query_string=params)
    return [row["member_id"] for row in ndjson(response)]


@pytest.fixture
def people(app, policy):
    """One member of each kind, with both optional purposes granted where they can be."""
    adult = make_member()
    grant(adult, "advertising")
    grant(adult, "trend_analysis")
    minor = make_member(birth_date=clock.utcnow().date() - timedelta(days=365 * 10))
    grant(minor, "trend_analysis")
    # A yes given as an adult, then the birth date corrected: advertising is barred now.
    corrected = make_member()
    grant(corrected, "advertising")
    grant(corrected, "trend_analysis")
    corrected.birth_date = clock.utcnow().date() - timedelta(days=365 * 12)
    waiting = make_member()
    grant(waiting, "advertising")
    grant(waiting, "trend_analysis")
    waiting.status = MemberStatus.AWAITING_GUARDIAN
    erased = make_member()
    grant(erased, "advertising")
    grant(erased, "trend_analysis")
    erased_id = erased.public_id
    erase_member(erased, actor=None, reason="test")
    withdrawn = make_member()
    grant(withdrawn, "advertising")
    grant(withdrawn, "advertising", False)
    make_member()  # never answered
    db.session.commit()
    return {
        "adult": adult.public_id,
        "minor": minor.public_id,
        "corrected": corrected.public_id,
        "waiting": waiting.public_id,
        "erased": erased_id,
        "tombstone": erased.public_id,
        "withdrawn": withdrawn.public_id,
    }


def test_only_members_usable_now_are_in_an_audience(client, people):
    token = make_token("audiences:read")
    assert audience(client, token, "advertising") == [people["adult"]]
    assert sorted(audience(client, token, "trend_analysis")) == sorted(
        [people["adult"], people["minor"], people["corrected"]]
    )
    everyone = audience(client, token, "advertising") + audience(client, token, "trend_analysis")
    for excluded in ("waiting", "erased", "tombstone", "withdrawn"):
        assert people[excluded] not in everyone


def test_a_withdrawal_leaves_the_audience_at_once(client, member, policy):
    token = make_token("audiences:read")
    grant(member, "advertising")
    assert audience(client, token, "advertising") == [member.public_id]
    grant(member, "advertising", False)
    assert audience(client, token, "advertising") == []


def test_a_policy_change_to_the_purpose_empties_it_until_members_answer_again(client, people):
    token = make_token("audiences:read")
    make_policy(effective_in_days=0, changed_purposes="advertising", summary="Ads change")
    clock.freeze(clock.utcnow() + timedelta(seconds=1))
    assert audience(client, token, "advertising") == []
    assert people["adult"] in audience(client, token, "trend_analysis")


def test_ndjson_rows_carry_the_member_and_since_when(client, member, policy):
    token = make_token("audiences:read")
    grant(member, "trend_analysis")
    response = client.get(AUDIENCE.format("trend_analysis"), headers=bearer(token))
    assert "Accept" in response.headers["Vary"] and "Link" not in response.headers
    [row] = ndjson(response)
    assert set(row) == {"member_id", "since"} and row["member_id"] == member.public_id
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", row["since"])


def test_csv_on_request(client, people):
    token = make_token("audiences:read")
    response = client.get(
        AUDIENCE.format("trend_analysis"), headers={**bearer(token), "Accept": "text/csv"}
    )
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["member_id"] for r in rows] == audience(client, token, "trend_analysis")
    assert all(r["since"].endswith("Z") for r in rows)


def test_other_formats_are_406(client):
    token = make_token("audiences:read")
    response = client.get(
        AUDIENCE.format("advertising"), headers={**bearer(token), "Accept": "application/xml"}
    )
    assert response.status_code == 406 and response.mimetype == "application/problem+json"


def test_pages_follow_the_link_header_to_the_end(client, policy):
    token = make_token("audiences:read")
    for _ in range(7):
        grant(make_member(), "trend_analysis")
    whole = audience(client, token, "trend_analysis")
    assert len(whole) == 7 and whole == sorted(whole, key=lambda s: s.encode())
    url, pages = AUDIENCE.format("trend_analysis") + "?limit=3", []
    while url:
        response = client.get(url, headers=bearer(token))
        pages.append([row["member_id"] for row in ndjson(response)])
        link = response.headers.get("Link")
        url = re.fullmatch(r'<([^>]+)>; rel="next"', link).group(1) if link else None
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sum(pages, []) == whole
    # `after` alone works too (the last member id you got).
    assert audience(client, token, "trend_analysis", after=whole[4]) == whole[5:]
    # An exact last page has no next link.
    response = client.get(AUDIENCE.format("trend_analysis") + "?limit=7", headers=bearer(token))
    assert "Link" not in response.headers


@pytest.mark.parametrize("purpose", ["service", "nothing", "Advertising"])
def test_only_optional_purposes_have_audiences(client, purpose):
    token = make_token("audiences:read")
    with nothing_written(except_columns=("api_token.last_used_at",)):
        response = client.get(AUDIENCE.format(purpose), headers=bearer(token))
    assert response.status_code == 404 and response.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "10001"},
        {"limit": "x"},
        {"limit": "²"},
        {"limit": "9" * 5000},
        {"after": ""},
        {"after": "a b"},
    ],
)
def test_bad_parameters_are_400(client, params):
    token = make_token("audiences:read")
    response = client.get(
        AUDIENCE.format("advertising"), headers=bearer(token), query_string=params
    )
    assert response.status_code == 400 and response.mimetype == "application/problem+json"


def test_the_whole_audience_streams_in_batches(client, app, policy, monkeypatch):
    """Without a limit the rows come from a server-side cursor, batch by batch."""
    from consent_center.services import downstream

    for _ in range(5):
        grant(make_member(), "trend_analysis")
    real = downstream.stream_audience
    seen = []

    def small_batches(purpose, *, after=None, batch=5000):
        batches = real(purpose, after=after, batch=2)

        def counted():
            for rows in batches:
                seen.append(len(rows))
                yield rows

        return counted()

    monkeypatch.setattr("consent_center.web.api.views.stream_audience", small_batches)
    token = make_token("audiences:read")
    assert len(audience(client, token, "trend_analysis")) == 5
    assert seen == [2, 2, 1]
