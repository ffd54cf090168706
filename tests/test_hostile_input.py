"""Bad input is a 4xx, never a 5xx, and writes nothing: every rule and method of the URL map,
as anonymous, member, guardian, staff and an API token, with hostile values in each path
parameter, query parameter and form field.

Everything is derived, so a new route is covered without editing this file: the rules come
from `app.url_map`; real path arguments, query names and form field names are harvested by
crawling the pages each identity can see (every link and form), and a generous set of common
names is added. Each rule+method gets every hostile value in its path, its query and (for a
state change) its form, with the session's CSRF token and a valid Twilio signature, so the
input reaches the view rather than stopping at a guard in front of it. An identity tries every
hostile value on the rules its pages link to (and on rules no page links to), and two of them
in turn elsewhere (where it is refused at the door), so every rule+method meets all of them.
"""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from sqlalchemy import select, text
from twilio.request_validator import RequestValidator
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule

from consent_center.extensions import db, limiter
from consent_center.models import Member
from consent_center.web.api import API_PREFIX, api_app
from tests.conftest import csrf_token, make_member, make_policy, post
from tests.support.api import bearer, grant, make_token
from tests.test_deletion import ask_for_deletion
from tests.test_guardians import (
    GUARDIAN_EMAIL,
    link_from_mailbox,
    register_minor,
    verify_as_guardian,
)

HOSTILE: dict[str, str | bytes] = {
    "nul": "a\x00b",
    "2^31": str(2**31),
    "10^20": str(10**20),
    "10 KB": "x" * 10_240,
    "bad utf-8": b"\xff\xfe\xc3",
    "non-id": "not-an-id",
}
# Names many forms and lists use; the crawl adds every name the pages really have.
COMMON_NAMES = {
    "page", "q", "status", "after", "limit", "next", "purpose", "email", "phone", "name",
    "code", "message", "From", "To", "Body", "MessageSid", "MessageStatus", "OptOutType",
}  # fmt: skip
STATE_CHANGES = {"POST", "PUT", "PATCH", "DELETE"}
TWILIO_TOKEN = "hostile-walk-twilio-token"


class _Page(HTMLParser):
    """Links, forms and field names of one page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: set[str] = set()
        self.forms: list[tuple[str, str]] = []  # (method, action)
        self.fields: set[str] = set()
        self.query_names: set[str] = set()
        self._get_form = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("href", "hx-get", "hx-post", "action"):
            if attrs.get(name):
                self.links.add(attrs[name])
        if tag == "form":
            method = (attrs.get("method") or "get").upper()
            self._get_form = method == "GET"
            self.forms.append((method, attrs.get("action") or ""))
        if tag in ("input", "select", "textarea", "button") and attrs.get("name"):
            self.fields.add(attrs["name"])
            if self._get_form:
                self.query_names.add(attrs["name"])

    def handle_endtag(self, tag):
        if tag == "form":
            self._get_form = False


def _seed(app, client, login_as):
    """One of each kind of object, reachable by the identities that may see it."""
    make_policy()
    minor = register_minor(client)
    guardian_client = app.test_client()
    token = link_from_mailbox()
    verify_as_guardian(guardian_client, token)
    post(guardian_client, f"/guardian/invite/{token}/decide",
         {"decision": "approve", "guardian_birth_date": "1980-05-01",
          "guardian_name": "Parent Lee"})  # fmt: skip
    member = make_member()
    grant(member, "advertising")
    member_client = login_as(member, app.test_client())
    ask_for_deletion(member_client, member)
    staff = make_member(role="admin", email="admin@example.org")
    staff_client = login_as(staff, app.test_client())
    anonymous = app.test_client()
    api_client = app.test_client()
    api_headers = bearer(make_token())
    assert minor.public_id
    guardian = db.session.scalars(select(Member).where(Member.email == GUARDIAN_EMAIL)).one()
    login_as(guardian, guardian_client)
    return {
        "anonymous": (anonymous, {}, None),
        "member": (member_client, {}, member),
        "guardian": (guardian_client, {}, guardian),
        "staff": (staff_client, {}, staff),
        "api": (api_client, api_headers, None),
    }


def _row_counts() -> dict[str, int]:
    tables = [t.name for t in db.metadata.sorted_tables]
    query = " UNION ALL ".join(f"SELECT '{t}', COUNT(*) FROM {t}" for t in tables)
    db.session.commit()
    counts = dict(db.session.execute(text(query)).all())
    db.session.commit()
    return counts


def _crawl(client, headers, adapter, starts, limit=80):
    """Visit GET pages from `starts`; return real arguments per rule, query and field names."""
    seen, queue = set(), list(starts)
    args: dict[str, dict] = {}
    query_names, fields = set(), set()
    while queue and len(seen) < limit:
        url = queue.pop(0)
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost") or parts.path in seen:
            continue
        seen.add(parts.path)
        response = client.get(url, headers=headers, buffered=True)
        if response.status_code != 200 or "html" not in (response.mimetype or ""):
            continue
        page = _Page()
        page.feed(response.get_data(as_text=True))
        query_names |= page.query_names
        fields |= page.fields
        for link in page.links:
            link_parts = urlsplit(link)
            if link_parts.netloc not in ("", "localhost") or not link_parts.path.startswith("/"):
                continue
            query_names |= {k for k, _ in parse_qsl(link_parts.query)}
            for method in ("GET", "POST"):
                try:
                    rule, values = adapter.match(link_parts.path, method, return_rule=True)
                except HTTPException:
                    continue
                args.setdefault(rule.rule, values)
            if link_parts.path not in seen:
                queue.append(link)
    return args, query_names, fields


def _fill(rule, values: dict) -> str:
    """The rule's path with `values` (str or bytes) percent-encoded into its arguments."""
    return re.sub(
        r"<(?:[^:<>]+:)?([^<>]+)>",
        lambda m: quote(_as_text(values[m.group(1)]), safe=""),
        rule.rule,
    )


def _as_text(value) -> str | bytes:
    return value if isinstance(value, str | bytes) else str(value)


def _encode(names, value) -> str:
    return urlencode([(name, value) for name in sorted(names)])


def _synthetic(rule) -> dict:
    return {name: "1" if "int" in type(conv).__name__.lower() else "x"
            for name, conv in rule._converters.items()}  # fmt: skip


def every_rule(app) -> Map:
    """The site's routes and the API's, at the path the API is mounted on."""
    combined = Map(converters=app.url_map.converters)
    for rule in app.url_map.iter_rules():
        combined.add(rule.empty())
    for rule in api_app(app).url_map.iter_rules():
        combined.add(Rule(API_PREFIX + rule.rule, endpoint=rule.endpoint, methods=rule.methods))
    return combined


def test_every_route_answers_hostile_input_with_a_4xx_and_writes_nothing(app, login_as, client):
    app.config.update(TWILIO_AUTH_TOKEN=TWILIO_TOKEN, TWILIO_ACCOUNT_SID="AC" + "0" * 32,
                      PROPAGATE_UNEXPECTED=False)  # fmt: skip
    clients = _seed(app, client, login_as)
    url_map = every_rule(app)
    adapter = url_map.bind("localhost")
    rules = [r for r in url_map.iter_rules() if r.endpoint != "static"]
    rules.append(next(r for r in url_map.iter_rules() if r.endpoint == "static"))
    harvested: dict[str, tuple] = {}
    starts = ["/", "/me", "/guardian", "/staff", "/policy", "/contact", "/sign-in", "/register"]
    for role, (c, headers, _who) in clients.items():
        harvested[role] = _crawl(c, headers, adapter, starts)
    validator = RequestValidator(TWILIO_TOKEN)
    limits_were = limiter.enabled
    limiter.enabled = False  # a 429 would hide what the view does with the input
    before = _row_counts()
    failures, writes, problems, tried = [], [], [], set()
    statuses: Counter = Counter()
    values = list(HOSTILE.items())
    linked_anywhere = {rule for found in harvested.values() for rule in found[0]}
    assert len(clients) * 2 >= len(values)
    try:
        for index, (role, (c, headers, who)) in enumerate(clients.items()):
            # Two hostile values per role, in turn, where this identity has no link to the
            # rule (it is refused at the door); all of them where it has one, or nobody has.
            some = [values[(2 * index + k) % len(values)] for k in range(2)]
            real_args, crawled_query, crawled_fields = harvested[role]
            query_names = COMMON_NAMES | crawled_query
            field_names = (COMMON_NAMES | crawled_fields) - {"csrf_token"}  # sent valid
            for rule in rules:
                for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                    # Signed in again each time: an accepted sign-out or language change
                    # must not turn the rest of the walk into anonymous or refused requests.
                    if who is not None:
                        login_as(who, c)
                        before = _row_counts()  # signing in writes its session row
                    token = csrf_token(c, "/contact")
                    real = real_args.get(rule.rule) or _synthetic(rule)
                    linked = rule.rule in real_args or rule.rule not in linked_anywhere
                    sample = values if linked else some
                    cases = []
                    for label, value in sample:
                        if rule.arguments:
                            path = _fill(rule, dict.fromkeys(rule.arguments, value))
                            cases.append((f"path={label}", path, "", None))
                        path = _fill(rule, real)
                        cases.append((f"query={label}", path, _encode(query_names, value), None))
                        if method in STATE_CHANGES:
                            form = _encode(field_names, value)
                            cases.append((f"form={label}", path, "", form))
                    for label, path, query, form in cases:
                        tried.add((rule.rule, method))
                        data = form
                        if method in STATE_CHANGES:
                            data = "&".join(filter(None, [form, urlencode({"csrf_token": token})]))
                        url = f"{path}?{query}" if query else path
                        signed = {k: v for k, v in parse_qsl(data or "")}
                        send = dict(headers)
                        send["X-CSRFToken"] = token
                        send["X-Twilio-Signature"] = validator.compute_signature(
                            f"http://localhost{url}", signed
                        )
                        response = c.open(
                            url,
                            method=method,
                            data=data,
                            content_type="application/x-www-form-urlencoded" if data else None,
                            headers=send,
                            buffered=True,  # a streamed body runs to its end in the request
                        )
                        where = f"{role} {method} {rule.rule} {label}"
                        if response.status_code >= 500:
                            failures.append(f"{where}: {response.status_code}")
                        if (
                            rule.rule.startswith("/api/")
                            and response.status_code >= 400
                            and response.mimetype != "application/problem+json"
                        ):
                            problems.append(f"{where}: {response.mimetype}")
                        statuses[response.status_code] += 1
                        # A refusal writes nothing; an accepted request (extra fields are
                        # ignored, e.g. a sign-out) may do what it is for.
                        after = _row_counts()
                        if response.status_code >= 400 and after != before:
                            changed = sorted(k for k in after if after[k] != before[k])
                            writes.append(f"{where}: {response.status_code} {changed}")
                        before = after
    finally:
        limiter.enabled = limits_were
    assert not failures, "\n".join(failures)
    assert not problems, "\n".join(problems)
    assert not writes, "\n".join(writes)
    every = {(r.rule, m) for r in url_map.iter_rules() for m in r.methods - {"HEAD", "OPTIONS"}}
    assert tried == every
    # The values reached the views: forms were validated, pages were shown.
    assert statuses[422] and statuses[200]


def test_the_reported_cases_are_refused_cleanly(app, client, login_as):
    """The issue's examples: a NUL byte is a 400 (a problem document under /api), an id
    beyond the integer column is a 404, a page number past any listing is a 404."""
    make_policy()
    staff = make_member(role="admin")
    token = make_token()
    before = _row_counts()
    assert client.get("/policy/versions/2147483648").status_code == 404
    assert client.get(f"/policy/versions/{10**20}").status_code == 404
    assert client.get("/policy/versions/1").status_code == 200
    assert client.get("/policy?x=%00").status_code == 400
    assert client.get("/policy?x=%FF").status_code == 400
    assert client.get("/unsubscribe/a%00b").status_code == 400
    assert post(client, "/contact", {"name": "a\x00b"}).status_code == 400
    api = client.get("/api/v1/members/a%00b/consents", headers=bearer(token))
    assert (api.status_code, api.mimetype) == (400, "application/problem+json")
    login_as(staff)
    before["member_session"] += 1  # signing in writes its session row
    assert client.get("/staff/audit?page=99999999999999999999").status_code == 404
    assert client.get("/staff/audit?page=2").status_code == 200
    assert client.get("/staff/audit?page=x").status_code == 200  # the first page
    assert _row_counts() == before
