"""Every page, looked at in a real browser: member, guardian and public pages fit a 375 px
phone screen (no sideways scrolling) and pass axe-core in English and Chinese; every page,
staff pages too, leaves a full-page screenshot at 375 px and 1280 px in each language in
test-results/screenshots/ (git-ignored) for people to look at.

The list of pages comes from the app's URL map: every GET endpoint of the member, guardian,
public and sign-in areas is either a page here (with the objects and session it needs) or
named in NOT_PAGES with the reason, so a new page cannot be forgotten. SQLite only: how a
page looks does not depend on the database.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page
from sqlalchemy import select

from consent_center.cli import DEMO_MEMBER_EMAIL, DEMO_STAFF_EMAIL
from consent_center.domain import Actor, Channel, Locale, MemberStatus, Method, Role
from tests.browser.conftest import BROWSING, Browsing, LiveServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("_live_server", ["sqlite"], indirect=True),
]

# Pictures cost time: `make screenshots` (UPDATE_SCREENSHOTS=1) takes them; a test run checks.
SCREENSHOTS = os.environ.get("UPDATE_SCREENSHOTS") == "1"
SHOTS = Path(__file__).resolve().parents[2] / "test-results" / "screenshots"
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 800}
LANGUAGES = {"en": Locale.EN, "zh": Locale.ZH}

# The areas whose pages members, guardians and the public see, and which must fit a phone.
MEMBER_AREAS = ("public", "auth", "member", "guardian", "gpc", "dev")
# GET endpoints of those areas that are not pages, and why.
NOT_PAGES = {
    "public.ledger_public_key": "a PEM key for verifiers",
    "gpc.gpc_json": "JSON for browsers (Global Privacy Control)",
    "member.receipt_json": "a JSON download",
    "public.guardian_short": "a short link that redirects to the invitation",
    "public.guardian_confirm_short": "a short link that redirects to the confirmation",
    "public.policy_short": "a short link that redirects to the version",
    "dev.mailbox": "development only (404 in tests and production)",
}

INVITE_TOKEN = "invite-token-for-pages"
CONFIRM_TOKEN = "confirm-token-for-pages"
MINOR_EMAIL = "mei@example.org"
WAITING_EMAIL = "xiaoming@example.org"
GUARDIAN_EMAIL = "parent.lin@example.org"
INVITED_GUARDIAN_EMAIL = "parent.wang@example.org"
LEAVING_EMAIL = "leaving@example.org"
ADMIN_EMAIL = "admin@example.org"
REVIEW_EMAIL = "wang.fang@example.org"


@dataclass(frozen=True)
class Shot:
    """One page: who looks (an email, or None), the session it needs, and its address
    (`{w.<field>}` placeholders name objects of the `World`)."""

    name: str
    endpoint: str | None  # None for pages that are no endpoint of their own (errors)
    path: str
    who: str | None = None
    session: dict = field(default_factory=dict)
    status: int = 200


@dataclass(frozen=True)
class World:
    """The objects the pages need, built once on top of the demo seed."""

    receipt_id: str
    deletion_id: str
    ward_id: str
    invite_link_id: str
    member_id: str
    draft_id: str
    policy_id: str
    incident_id: str
    unsent_incident_id: str
    fan_out_id: str
    review_id: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _adult(name: str, email: str, like) -> object:
    from consent_center.models import Member

    return Member(
        name=name,
        email=email,
        locale=Locale.EN,
        birth_date=date(1988, 8, 8),
        status=MemberStatus.ACTIVE,
        email_verified_at=like.email_verified_at,
        policy_seen_number=like.policy_seen_number,
    )


def _child(name: str, email: str, years: int, like) -> object:
    from consent_center.models import Member

    today = date.today()
    return Member(
        name=name,
        email=email,
        locale=Locale.EN,
        birth_date=today.replace(year=today.year - years, day=1),
        status=MemberStatus.AWAITING_GUARDIAN,
        email_verified_at=like.email_verified_at,
        policy_seen_number=like.policy_seen_number,
    )


def build_world() -> World:
    """Consent events, a deletion request, messages, a ward with a guardian and a pending
    second confirmation, a minor whose guardian is invited, a policy draft, incident notices
    (one sent, which makes a fan-out): what every page needs to show something."""
    from flask import current_app

    from consent_center.extensions import db
    from consent_center.models import Member, PolicyVersion
    from consent_center.models.policy import PolicyText
    from consent_center.services import guardians
    from consent_center.services.consents import set_consent
    from consent_center.services.deletion import request_deletion
    from consent_center.services.incidents import FIELDS, save_incident, send_incident
    from consent_center.services.localtime import local_day_start, local_today
    from consent_center.services.members import ask_birth_date_review
    from consent_center.services.policies import save_draft

    def member(email: str) -> Member:
        return db.session.scalars(select(Member).where(Member.email == email)).one()

    demo, staff = member(DEMO_MEMBER_EMAIL), member(DEMO_STAFF_EMAIL)
    for purpose, granted in (
        ("trend_analysis", True),
        ("advertising", True),
        ("advertising", False),
    ):
        event = set_consent(demo, purpose, granted, actor=Actor.MEMBER, method=Method.FORM)

    leaving = _adult("Leaving Lee", LEAVING_EMAIL, demo)
    ward = _child("Mei Lin", MINOR_EMAIL, 10, demo)
    waiting = _child("Xiao Ming", WAITING_EMAIL, 12, demo)
    admin = _adult("Admin Ada", ADMIN_EMAIL, demo)
    admin.role = Role.ADMIN
    db.session.add_all([leaving, ward, waiting, admin])
    db.session.flush()
    deletion = request_deletion(leaving, requested_by=leaving, reason="I no longer use it.")

    link = guardians.invite_guardian(ward, Channel.EMAIL, GUARDIAN_EMAIL, actor=ward).link
    guardian = guardians.approve_minor(
        link,
        guardian_name="Lin Hua",
        guardian_birth_date=date(1980, 5, 1),
        purposes={"trend_analysis"},
        note=None,
    )
    pending = guardians.request_second_confirmation(ward, guardian, "trend_analysis")
    pending.pending_token_hash = _hash(CONFIRM_TOKEN)
    invited = guardians.invite_guardian(
        waiting, Channel.EMAIL, INVITED_GUARDIAN_EMAIL, actor=waiting
    ).link
    invited.token_hash = _hash(INVITE_TOKEN)

    policy = db.session.scalars(select(PolicyVersion)).one()
    draft = save_draft(
        staff,
        texts={
            Locale.EN: PolicyText(
                Locale.EN,
                policy.title,
                policy.body_md + "\n\nWe keep sign-in records for 30 days.",
                "We say how long we keep sign-in records.",
            ),
            Locale.ZH: PolicyText(
                Locale.ZH,
                policy.title_zh,
                policy.body_md_zh + "\n\n我们保存登录记录30天。",
                "我们说明登录记录的保存期限。",
            ),
        },
        changed_purposes=(),
        effective_at=local_day_start(local_today() + timedelta(days=10)),
        config=current_app.config,
    )
    texts = {
        "en": {f: f"The {f.replace('_', ' ')} of the notice." for f in FIELDS},
        "zh_Hans_CN": {f: "通知的内容。" for f in FIELDS},
    }
    audience = {
        "status": None,
        "registered_after": None,
        "registered_before": None,
        "purpose": None,
    }
    sent = save_incident(staff, content=texts, audience=audience)
    fan_out = send_incident(staff, sent)
    unsent = save_incident(staff, content=texts, audience=audience)
    corrected = _adult("Wang Fang", REVIEW_EMAIL, demo)
    db.session.add(corrected)
    db.session.flush()
    review = ask_birth_date_review(corrected, date(local_today().year - 10, 1, 1))
    db.session.commit()
    return World(
        receipt_id=event.receipt_id,
        deletion_id=deletion.public_id,
        ward_id=ward.public_id,
        invite_link_id=invited.public_id,
        member_id=demo.public_id,
        draft_id=draft.public_id,
        policy_id=policy.public_id,
        incident_id=sent.public_id,
        unsent_incident_id=unsent.public_id,
        fan_out_id=fan_out.public_id,
        review_id=review.public_id,
    )


def _member_shots() -> list[Shot]:
    """Every member, guardian and public page (and the states that change how it looks)."""
    from consent_center.web.auth.views import PENDING_REGISTERED, PENDING_TO, PENDING_TOKEN
    from consent_center.web.guardian.views import CODE_TOKEN, VERIFIED_LINK
    from consent_center.web.member.views import CONTACT_PROOF, CONTACT_TOKENS
    from consent_center.web.reauth import DELETION, EXPORT, WARD_DELETION, WARD_EXPORT

    me, guardian = DEMO_MEMBER_EMAIL, GUARDIAN_EMAIL
    as_guardian = {"is_guardian": True}
    code_sent = {PENDING_TOKEN: "t", PENDING_TO: "m•••@example.com", PENDING_REGISTERED: True}
    proof = {
        "token": "t",
        "channel": "email",
        "to": "m•••@example.com",
        "new": {"email": "new@example.com"},
    }
    ward = "/guardian/wards/{w.ward_id}"
    return [
        Shot("home", "public.index", "/"),
        Shot("contact", "public.contact", "/contact"),
        Shot("policy", "public.policy", "/policy"),
        Shot("policy-versions", "public.policy_versions", "/policy/versions"),
        Shot("policy-version", "public.policy_version", "/policy/versions/1"),
        Shot("unsubscribe", "public.unsubscribe", "/unsubscribe/{w.member_id}"),
        Shot("not-found", None, "/no-such-page", status=404),
        Shot("register", "auth.register", "/register"),
        Shot("sign-in", "auth.sign_in", "/sign-in"),
        Shot("enter-code", "auth.enter_code", "/sign-in/code", session=code_sent),
        Shot("me", "member.overview", "/me", me),
        Shot("inventory-group", "member.inventory_group", "/me/data/notification", me),
        Shot("history", "member.history", "/me/history", me),
        Shot("receipt", "member.receipt", "/me/receipts/{w.receipt_id}", me),
        Shot("messages", "member.notifications", "/me/notifications", me),
        Shot("profile", "member.profile", "/me/profile", me),
        Shot("access-log", "member.access_log", "/me/access-log", me),
        Shot(
            "confirm-identity",
            "member.confirm_identity",
            "/me/profile/confirm-identity",
            me,
            {CONTACT_PROOF: proof},
        ),
        Shot(
            "verify-contact",
            "member.verify_contact",
            "/me/profile/verify",
            me,
            {CONTACT_TOKENS: [["t", "email", "n•••@example.com"]]},
        ),
        Shot("delete", "member.delete_start", "/me/delete", me),
        Shot("delete-code", "member.delete_start", "/me/delete", me, {DELETION.key: [None, "t"]}),
        Shot(
            "deletion-status",
            "member.deletion_status",
            "/me/deletion/{w.deletion_id}",
            LEAVING_EMAIL,
        ),
        Shot("export", "member.export", "/me/export", me),
        Shot("export-code", "member.export", "/me/export", me, {EXPORT.key: [None, "t"]}),
        Shot(
            "awaiting-guardian", "member.awaiting_guardian", "/me/awaiting-guardian", WAITING_EMAIL
        ),
        Shot("guardian-invitation", "guardian.invitation", f"/guardian/invite/{INVITE_TOKEN}"),
        Shot(
            "guardian-invitation-code",
            "guardian.invitation",
            f"/guardian/invite/{INVITE_TOKEN}",
            session={CODE_TOKEN: "t"},
        ),
        Shot("guardian-link-unusable", None, "/guardian/invite/no-such-token", status=404),
        Shot(
            "guardian-decide",
            "guardian.decide",
            f"/guardian/invite/{INVITE_TOKEN}/decide",
            session={VERIFIED_LINK: "{w.invite_link_id}"},
        ),
        Shot("guardian", "guardian.dashboard", "/guardian", guardian, as_guardian),
        Shot("ward", "guardian.ward", ward, guardian, as_guardian),
        Shot(
            "ward-delete-code",
            "guardian.ward",
            ward,
            guardian,
            {**as_guardian, WARD_DELETION.key: ["{w.ward_id}", "t"]},
        ),
        Shot("ward-export", "guardian.export_ward", ward + "/export", guardian, as_guardian),
        Shot(
            "ward-access-log",
            "guardian.ward_access_log",
            ward + "/access-log",
            guardian,
            as_guardian,
        ),
        Shot(
            "ward-export-code",
            "guardian.export_ward",
            ward + "/export",
            guardian,
            {**as_guardian, WARD_EXPORT.key: ["{w.ward_id}", "t"]},
        ),
        Shot(
            "guardian-confirm",
            "guardian.confirm_second",
            f"/guardian/confirm/{CONFIRM_TOKEN}",
            guardian,
            as_guardian,
        ),
    ]


# Staff GET endpoints that are not pages.
NOT_STAFF_PAGES = {"staff.audit_csv": "a CSV download", "staff.consent_csv": "a CSV download"}


def _staff_shots() -> list[Shot]:
    staff = DEMO_STAFF_EMAIL
    return [
        Shot("staff-dashboard", "staff.dashboard", "/staff", staff),
        Shot("staff-dashboard-year", "staff.dashboard", "/staff?days=365", staff),
        Shot("staff-members", "staff.members", "/staff/members?q=lin", staff),
        Shot("staff-member-reason", "staff.member", "/staff/members/{w.member_id}", staff),
        Shot(
            "staff-member",
            "staff.member",
            "/staff/members/{w.member_id}?reason=member_request",
            staff,
        ),
        Shot("staff-birth-dates", "staff.birth_date_reviews", "/staff/birth-dates", staff),
        Shot(
            "staff-birth-date",
            "staff.birth_date_review",
            "/staff/birth-dates/{w.review_id}",
            staff,
        ),
        Shot("staff-deletions", "staff.deletions", "/staff/deletions", staff),
        Shot("staff-deletion", "staff.deletion", "/staff/deletions/{w.deletion_id}", staff),
        Shot("staff-fan-outs", "staff.fan_outs", "/staff/fan-outs", staff),
        Shot("staff-fan-out", "staff.fan_out", "/staff/fan-outs/{w.fan_out_id}", staff),
        Shot("staff-messages", "staff.notifications", "/staff/notifications?status=pending", staff),
        Shot("staff-audit", "staff.audit", "/staff/audit", staff),
        Shot("staff-policies", "staff.policies", "/staff/policies", staff),
        Shot("staff-policy", "staff.policy", "/staff/policies/{w.policy_id}", staff),
        Shot("staff-policy-new", "staff.policy_new", "/staff/policies/new", staff),
        Shot("staff-policy-edit", "staff.policy_edit", "/staff/policies/{w.draft_id}/edit", staff),
        Shot(
            "staff-policy-publish",
            "staff.policy_publish",
            "/staff/policies/{w.draft_id}/publish",
            staff,
        ),
        Shot("staff-incidents", "staff.incidents", "/staff/incidents", staff),
        Shot("staff-incident", "staff.incident", "/staff/incidents/{w.incident_id}", staff),
        Shot("staff-incident-new", "staff.incident_new", "/staff/incidents/new", staff),
        Shot(
            "staff-incident-edit",
            "staff.incident_edit",
            "/staff/incidents/{w.unsent_incident_id}/edit",
            staff,
        ),
        Shot("staff-integrations", "staff.integrations", "/staff/integrations", staff),
        Shot("staff-team", "staff.team", "/staff/team", ADMIN_EMAIL),
    ]


MEMBER_SHOTS = {s.name: s for s in _member_shots()}
STAFF_SHOTS = {s.name: s for s in _staff_shots()}


def _get_endpoints(app, prefixes: tuple[str, ...]) -> set[str]:
    return {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods and rule.endpoint.split(".", 1)[0] in prefixes
    }


def test_every_page_is_walked(_live_server: LiveServer):
    """Each GET endpoint of the member, guardian, public and staff areas is a page walked
    below or named as no page: a new page fails here until it is added."""
    app = _live_server.app
    member_side = _get_endpoints(app, MEMBER_AREAS)
    walked = {s.endpoint for s in MEMBER_SHOTS.values()}
    assert member_side - walked - set(NOT_PAGES) == set(), "pages missing from MEMBER_SHOTS"
    assert walked | set(NOT_PAGES) <= member_side | {None}, "names no endpoint"
    staff_side = _get_endpoints(app, ("staff",))
    staff_walked = {s.endpoint for s in STAFF_SHOTS.values()}
    assert staff_side - staff_walked - set(NOT_STAFF_PAGES) == set(), "missing from STAFF_SHOTS"


# --------------------------------------------------------------------------------------
# walking


@pytest.fixture
def world(_live_server: LiveServer) -> World:
    """The world, built once and kept until another module's test resets the database."""
    if _live_server.world is None:
        _live_server.reset()
        _live_server.world = _live_server.query(build_world)
    return _live_server.world


@pytest.fixture
def walker(request, chromium, _live_server: LiveServer, world: World):
    """Browsing without the per-test reset: the pages only read the world."""
    browsing = Browsing(chromium, _live_server)
    request.node.stash[BROWSING] = browsing
    try:
        yield browsing
    finally:
        browsing.close()


def _open(walker: Browsing, world: World, shot: Shot, lang: str) -> Page:
    """A phone-sized page in `lang`, signed in as the shot's member, on the shot's address."""
    server = walker.server
    locale = LANGUAGES[lang]

    def set_locale():
        from consent_center.extensions import db
        from consent_center.models import Member

        if shot.who:
            db.session.scalars(select(Member).where(Member.email == shot.who)).one().locale = locale
            db.session.commit()

    server.query(set_locale)
    values = {k: _fill(v, world) for k, v in shot.session.items()}
    page = walker.new_page(viewport=PHONE, locale="en-US" if lang == "en" else "zh-CN")
    page.context.add_cookies([server.session_cookie(shot.who, locale=locale, **values)])
    walker.visit(page, _fill(shot.path, world), status=shot.status)
    return page


def _fill(value, world: World):
    if isinstance(value, str):
        return value.format(w=world)
    if isinstance(value, list):
        return [_fill(v, world) for v in value]
    return value


def _shoot(page: Page, name: str, lang: str) -> None:
    """Full-page screenshots at phone and desktop width (the page ends at phone width)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("async () => { await document.fonts.ready }")
    options = {"full_page": True, "animations": "disabled", "caret": "hide"}
    page.screenshot(path=SHOTS / f"{name}-{lang}-375.png", **options)
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=SHOTS / f"{name}-{lang}-1280.png", **options)
    page.set_viewport_size(PHONE)


def page_width(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


# The innermost elements that reach past the right edge: what a failure message names.
OVERFLOWING = """(limit) => {
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    if (el.getBoundingClientRect().right <= limit + 0.5) continue;
    if ([...el.children].some(c => c.getBoundingClientRect().right > limit + 0.5)) continue;
    out.push(el.outerHTML.slice(0, 120));
    if (out.length >= 5) break;
  }
  return out;
}"""


@pytest.mark.parametrize("lang", list(LANGUAGES))
@pytest.mark.parametrize("name", list(MEMBER_SHOTS))
def test_member_page_fits_a_phone(walker, world, name, lang):
    """No sideways scrolling at 375 px, axe-clean, in the language chosen."""
    shot = MEMBER_SHOTS[name]
    page = _open(walker, world, shot, lang)
    assert page.locator("html").get_attribute("lang") == ("en" if lang == "en" else "zh-Hans")
    if SCREENSHOTS:
        _shoot(page, name, lang)
    width = page_width(page)
    wide = page.evaluate(OVERFLOWING, PHONE["width"]) if width > PHONE["width"] else []
    assert width <= PHONE["width"], f"{page.url} is {width} px wide ({lang}): {wide}"
