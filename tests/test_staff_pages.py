"""Staff pages as staff read them: a header over every table column, times in the display
time zone, the consent chart over 7, 30, 90 or 365 days and its CSV from the same series, and
filters whose address is a page (full page when loaded directly or restored by htmx history,
the fragment when htmx swaps)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser

import pytest

from consent_center import clock
from consent_center.domain import Actor, Method
from consent_center.extensions import db
from consent_center.services.api_tokens import create_api_token
from consent_center.services.consents import set_consent
from consent_center.services.dashboard import SERIES_RANGES, consent_series
from consent_center.services.deletion import request_deletion
from consent_center.services.incidents import FIELDS, save_incident, send_incident
from tests.conftest import make_member, make_policy
from tests.support.staff import local_midnight, make_staff

TODAY = date(2026, 3, 2)


class Tables(HTMLParser):
    """Each table's header row (texts of its <th>s, visually hidden text included) and the
    number of cells in each body row."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self._cell: list[str] | None = None
        self._section = ""

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"head": [], "rows": []})
        elif not self.tables:
            return
        elif tag in ("thead", "tbody"):
            self._section = tag
        elif tag == "tr" and self._section == "tbody":
            self.tables[-1]["rows"].append(0)
        elif tag in ("th", "td"):
            self._cell = []
            if self._section == "tbody":
                self.tables[-1]["rows"][-1] += 1

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None and self.tables:
            if self._section == "thead":
                self.tables[-1]["head"].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._section = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def tables_of(page: str) -> list[dict]:
    parser = Tables()
    parser.feed(page)
    return parser.tables


@pytest.fixture
def console(app):
    """A bit of everything the console lists: consent, a deletion request, a sent incident
    notice (a fan-out), an API token; returns (admin, member)."""
    clock.freeze(local_midnight(TODAY) + timedelta(hours=9))
    admin = make_staff(role="admin", name="Ada Admin")
    make_policy()
    member = make_member(name="Li Wei")
    set_consent(member, "trend_analysis", True, actor=Actor.MEMBER, method=Method.FORM)
    request_deletion(member, requested_by=member, reason=None)
    texts = {"en": dict.fromkeys(FIELDS, "Text."), "zh_Hans_CN": dict.fromkeys(FIELDS, "内容。")}
    audience = {"status": None, "registered_after": None, "registered_before": None}
    send_incident(admin, save_incident(admin, content=texts, audience=audience | {"purpose": None}))
    create_api_token("crm", ("consents:read",))
    db.session.commit()
    return admin, member


def staff_pages(client, member) -> list[str]:
    """The console's pages with lists, as staff open them."""
    deletions = client.get("/staff/deletions").get_data(as_text=True)
    deletion = deletions.split('href="/staff/deletions/', 1)[1].split('"', 1)[0]
    fan_outs = client.get("/staff/fan-outs").get_data(as_text=True)
    fan_out = fan_outs.split('href="/staff/fan-outs/', 1)[1].split('"', 1)[0]
    return [
        "/staff",
        "/staff/members?q=li",
        f"/staff/members/{member.public_id}?reason=member_request",
        "/staff/birth-dates",
        "/staff/deletions",
        f"/staff/deletions/{deletion}",
        "/staff/fan-outs",
        f"/staff/fan-outs/{fan_out}",
        "/staff/notifications?status=pending",
        "/staff/audit",
        "/staff/policies",
        "/staff/incidents",
        "/staff/integrations",
        "/staff/team",
    ]


def test_every_table_column_has_a_header(client, login_as, console):
    admin, member = console
    login_as(admin)
    seen = 0
    for path in staff_pages(client, member):
        response = client.get(path)
        assert response.status_code == 200, path
        for table in tables_of(response.get_data(as_text=True)):
            seen += 1
            head = table["head"]
            assert head and all(head), f"{path}: a column without a header: {head}"
            for cells in table["rows"]:
                assert cells == len(head), f"{path}: {cells} cells under {len(head)} headers"
    assert seen >= 15


def test_times_are_shown_in_the_display_time_zone(client, login_as, app, console):
    """23:30 UTC on 1 March is 07:30 on 2 March in Shanghai, and the page says so."""
    admin, member = console
    assert app.config["BABEL_DEFAULT_TIMEZONE"] == "Asia/Shanghai"
    clock.freeze(datetime(2026, 3, 1, 23, 30, tzinfo=UTC))
    other = make_member()
    request_deletion(other, requested_by=other, reason=None)
    db.session.commit()
    login_as(admin)
    page = client.get("/staff/deletions?status=received").get_data(as_text=True)
    assert "2 March 2026, 07:30" in page and "1 March 2026, 23:30" not in page
    assert "Times are in China Time." in page
    with client.session_transaction() as session:
        session["locale"] = "zh_Hans_CN"
    admin.locale = "zh_Hans_CN"
    db.session.commit()
    page = client.get("/staff/deletions?status=received").get_data(as_text=True)
    assert "2026年3月2日 07:30" in page and "时间均为中国时间。" in page


@pytest.mark.parametrize("days", SERIES_RANGES)
def test_chart_shows_the_period_chosen(client, login_as, console, days):
    admin, _member = console
    login_as(admin)
    page = client.get(f"/staff?days={days}").get_data(as_text=True)
    assert f"over the last {days} days" in page
    assert f'<option selected value="{days}">' in page
    first = (TODAY - timedelta(days=days - 1)).strftime("%-d %B %Y")
    assert f"one point per day from {first} to" in page
    chart_rows = page.split('id="series-caption"', 1)[1].split("</table>", 1)[0]
    assert chart_rows.count("<tr>") == days + 1  # header row + one per day
    assert f'href="/staff/consent.csv?days={days}"' in page


def test_chart_period_defaults_to_90_days_and_refuses_others(client, login_as, console):
    admin, _member = console
    login_as(admin)
    assert "over the last 90 days" in client.get("/staff").get_data(as_text=True)
    for bad in ("10", "abc", "-7", "3650"):
        assert client.get(f"/staff?days={bad}").status_code == 400, bad
        assert client.get(f"/staff/consent.csv?days={bad}").status_code == 400, bad


def test_chart_csv_is_the_chart_series(client, login_as, console):
    admin, member = console
    login_as(admin)
    response = client.get("/staff/consent.csv?days=7")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    first = TODAY - timedelta(days=6)
    assert response.headers["Content-Disposition"] == (
        f"attachment; filename=consent-{first.isoformat()}-{TODAY.isoformat()}.csv"
    )
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["day", "members", "trend_analysis_share", "advertising_share"]
    assert [r[0] for r in rows[1:]] == [(first + timedelta(days=i)).isoformat() for i in range(7)]
    series = consent_series(days=7)
    for i, row in enumerate(rows[1:]):
        assert int(row[1]) == series.members[i]
        for value, key in zip(row[2:], series.rates, strict=True):
            rate = series.rates[key][i]
            assert value == ("" if rate is None else f"{rate:.4f}")
    # Today two members (the admin, Li Wei) and Li Wei's yes to trend analysis.
    assert rows[-1] == [TODAY.isoformat(), "2", "0.5000", "0.0000"]


@pytest.mark.parametrize(
    ("path", "fragment_start"),
    [
        ("/staff?days=30", '<div id="consent-chart">'),
        ("/staff/audit?action=member.", '<section id="audit-results"'),
        ("/staff/members?q=li", '<section id="member-results"'),
    ],
)
def test_filters_answer_a_fragment_to_htmx_and_a_page_otherwise(
    client, login_as, console, path, fragment_start
):
    admin, _member = console
    login_as(admin)
    page = client.get(path)
    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)
    swap = client.get(path, headers={"HX-Request": "true"})
    body = swap.get_data(as_text=True)
    assert "<html" not in body and body.lstrip().startswith(fragment_start), body[:200]
    assert {"HX-Request", "HX-History-Restore-Request"} <= set(swap.vary)
    # The back button: htmx 4 fetches the pushed address again and swaps the whole body.
    restore = client.get(path, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in restore.get_data(as_text=True)


def test_filter_forms_push_their_address(client, login_as, console):
    admin, _member = console
    login_as(admin)
    for path, target in (
        ("/staff", "#consent-chart"),
        ("/staff/audit", "#audit-results"),
        ("/staff/members", "#member-results"),
    ):
        page = client.get(path).get_data(as_text=True)
        form = page.split(f'hx-target="{target}"', 1)[0].rsplit("<form", 1)[1]
        assert 'method="get"' in form, path
        assert 'hx-push-url="true"' in page.split(f'hx-target="{target}"', 1)[1].split(">", 1)[0]
    base = client.get("/staff").get_data(as_text=True)
    assert '"history": false' not in base


def test_audit_filter_labels_speak_to_staff(client, login_as, console):
    admin, _member = console
    login_as(admin)
    page = client.get("/staff/audit").get_data(as_text=True)
    for label in (
        "Done by (a member number or an email address)",
        "What was done",
        "On or after",
        "On or before",
    ):
        assert f">{label}</label>" in page, label
    assert 'href="/staff/audit.csv?action=x"' in client.get("/staff/audit?action=x").get_data(
        as_text=True
    )


def test_channels_and_roles_are_shown_in_words(client, login_as, console):
    admin, _member = console
    login_as(admin)
    messages = client.get("/staff/notifications?status=pending").get_data(as_text=True)
    assert '">Email</td>' in messages and ">email</td>" not in messages
    found = client.get("/staff/members?q=ada").get_data(as_text=True)
    assert "· Administrator" in found and "· admin" not in found
    log = client.get("/staff/audit").get_data(as_text=True)
    assert "(Administrator)" in log and "(admin)" not in log
