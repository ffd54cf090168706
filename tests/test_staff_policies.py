"""Staff: drafting policy versions with a live preview, the notice-period rule, publishing
as a separate confirmed step, immutability, and what members see afterwards."""

from __future__ import annotations

import contextlib
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from consent_center import clock
from consent_center.extensions import db
from consent_center.models import AuditEvent, FanOut, Notification, PolicyVersion
from tests.conftest import make_member, make_policy, policy_texts, post
from tests.support.queries import race
from tests.support.staff import local_midnight, make_staff
from tests.support.writes import nothing_written

OLD_TEXT = "# Privacy policy\n\nWe use your data for trend analysis.\n\nWe never sell it.\n"
NEW_TEXT = (
    "# Privacy policy\n\nWe use your data for trend analysis and advertising planning.\n\n"
    "We never sell it.\n\nYou can withdraw at any time.\n"
)
OLD_TEXT_ZH = "# 隐私政策\n\n我们将您的数据用于趋势分析。\n\n我们从不出售数据。\n"
NEW_TEXT_ZH = (
    "# 隐私政策\n\n我们将您的数据用于趋势分析和广告策划。\n\n我们从不出售数据。\n\n"
    "您可以随时撤回同意。\n"
)
TODAY = date(2026, 3, 2)


@pytest.fixture
def staff(app):
    return make_staff()


@pytest.fixture
def at_midnight(app):
    """The clock at the start of TODAY in the display time zone (dates count whole days)."""
    clock.freeze(local_midnight(TODAY))
    return clock.utcnow()


def draft_data(**overrides) -> dict:
    data = {
        "title": "Privacy policy",
        "body_md": NEW_TEXT,
        "summary": "We add advertising planning as a use of your data.",
        "title_zh": "隐私政策",
        "body_md_zh": NEW_TEXT_ZH,
        "summary_zh": "我们新增广告策划作为您数据的用途。",
        "changed_purposes": ["advertising"],
        "effective_on": (TODAY + timedelta(days=30)).isoformat(),
    }
    data.update(overrides)
    return data


def audit_actions() -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_draft_preview_publish_notify(client, login_as, staff, at_midnight, app):
    make_policy(body=OLD_TEXT)
    emailed = make_member()
    texted = make_member(
        notify_email=False,
        phone="+8613800138000",
        phone_verified_at=clock.utcnow(),
        notify_sms=True,
    )
    login_as(staff)

    page = client.get("/staff/policies/new")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "We never sell it." in html  # starts from the text in effect
    assert 'hx-trigger="input changed delay:500ms"' in html

    # Live preview (htmx): a fragment with the rendered text and the diff against v1.
    preview = post(client, "/staff/policies/preview", draft_data(), htmx=True)
    assert preview.status_code == 200 and "HX-Request" in preview.headers["Vary"]
    fragment = preview.get_data(as_text=True)
    assert "<html" not in fragment and 'id="policy-preview"' in fragment
    assert "<ins>" in fragment and "advertising planning" in fragment
    assert "<h1>Privacy policy</h1>" in fragment  # rendered by the members' renderer
    # Without JavaScript, "Preview" answers the whole page with the form kept.
    full = post(client, "/staff/policies/preview", draft_data())
    assert full.status_code == 200 and "<html" in full.get_data(as_text=True)
    assert "You can withdraw at any time." in full.get_data(as_text=True)

    saved = post(client, "/staff/policies/new", draft_data())
    assert saved.status_code == 303
    draft = db.session.scalars(select(PolicyVersion).where(PolicyVersion.number.is_(None))).one()
    assert draft.published_at is None and draft.changed_purpose_keys == ("advertising",)
    assert draft.effective_at == local_midnight(TODAY + timedelta(days=30))
    assert saved.headers["Location"].endswith(f"/staff/policies/{draft.public_id}")
    detail = client.get(f"/staff/policies/{draft.public_id}").get_data(as_text=True)
    assert "Draft" in detail and "What changes from version 1" in detail and "<del>" not in detail
    assert "<ins>" in detail

    # Members see nothing of a draft.
    assert "advertising planning" not in client.get("/policy").get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 0

    confirm = client.get(f"/staff/policies/{draft.public_id}/publish")
    assert confirm.status_code == 200
    assert "2 by email" in confirm.get_data(as_text=True)  # the member and the staff member
    assert "1 by text message" in confirm.get_data(as_text=True)
    with nothing_written():
        unconfirmed = post(client, f"/staff/policies/{draft.public_id}/publish", {})
    assert unconfirmed.status_code == 422 and b"Tick this box" in unconfirmed.data
    db.session.refresh(draft)
    assert draft.published_at is None

    published = post(client, f"/staff/policies/{draft.public_id}/publish", {"confirm": "y"})
    assert published.status_code == 303
    fan = db.session.scalars(select(FanOut)).one()
    assert published.headers["Location"].endswith(f"/staff/fan-outs/{fan.public_id}")
    db.session.refresh(draft)
    assert draft.number == 2 and draft.published_at == at_midnight
    rows = db.session.execute(
        select(Notification.member_id, Notification.channel).where(
            Notification.fan_out_id == fan.id
        )
    ).all()
    assert sorted(rows) == sorted([(emailed.id, "email"), (texted.id, "sms"), (staff.id, "email")])
    assert client.get(published.headers["Location"]).status_code == 200

    # The member sees the in-app notice at once, and the diff behind it.
    login_as(emailed)
    overview = client.get("/me").get_data(as_text=True)
    assert "Policy changes on" in overview and "We add advertising planning" in overview
    version_page = client.get("/policy/versions/2").get_data(as_text=True)
    assert "<ins>" in version_page  # the public page shares the diff partial
    actions = audit_actions()
    assert "policy.draft_created" in actions and "policy.published" in actions
    assert "notify.policy_notice_enqueued" in actions


@pytest.mark.parametrize(
    ("days", "purposes", "ok"),
    [(7, [], True), (6, [], False), (30, ["trend_analysis"], True), (29, ["advertising"], False)],
)
def test_notice_period_is_enforced_on_the_form(
    client, login_as, staff, at_midnight, days, purposes, ok
):
    make_policy(body=OLD_TEXT)
    login_as(staff)
    data = draft_data(
        changed_purposes=purposes, effective_on=(TODAY + timedelta(days=days)).isoformat()
    )
    with contextlib.nullcontext() if ok else nothing_written():
        response = post(client, "/staff/policies/new", data)
    drafts = db.session.scalar(
        select(func.count()).select_from(PolicyVersion).where(PolicyVersion.number.is_(None))
    )
    if ok:
        assert response.status_code == 303 and drafts == 1
    else:
        assert response.status_code == 422 and drafts == 0
        page = response.get_data(as_text=True)
        needed = 30 if purposes else 7
        assert f"Members must be told at least {needed} days in advance." in page
        earliest = TODAY + timedelta(days=needed)
        assert "Choose " in page and str(earliest.year) in page
        assert 'id="effective_on-error"' in page and 'aria-invalid="true"' in page


def test_summary_and_text_are_required(client, login_as, staff, at_midnight):
    login_as(staff)
    with nothing_written():
        response = post(client, "/staff/policies/new", draft_data(summary=" ", body_md=""))
    assert response.status_code == 422
    assert b"Say what changed." in response.data
    assert b"The policy text is required." in response.data


def test_drafts_are_editable_until_published(client, login_as, staff, at_midnight):
    make_policy(body=OLD_TEXT)
    login_as(staff)
    post(client, "/staff/policies/new", draft_data())
    draft = db.session.scalars(select(PolicyVersion).where(PolicyVersion.number.is_(None))).one()
    edit = client.get(f"/staff/policies/{draft.public_id}/edit").get_data(as_text=True)
    assert "advertising planning" in edit and f'value="{draft.public_id}"' in edit
    response = post(
        client,
        f"/staff/policies/{draft.public_id}/edit",
        draft_data(summary="Second thoughts.", changed_purposes=[]),
    )
    assert response.status_code == 303
    db.session.refresh(draft)
    assert draft.summary == "Second thoughts." and draft.changed_purpose_keys == ()
    assert "policy.draft_updated" in audit_actions()
    # The preview of an existing draft carries its id (so "Save" edits it).
    page = post(client, "/staff/policies/preview", draft_data(draft=draft.public_id))
    assert f'formaction="/staff/policies/{draft.public_id}/edit"' in page.get_data(as_text=True)


def test_published_versions_are_immutable(client, login_as, staff, at_midnight):
    version = make_policy(body=OLD_TEXT)
    login_as(staff)
    base = f"/staff/policies/{version.public_id}"
    assert client.get(base).status_code == 200
    with nothing_written():
        assert client.get(f"{base}/edit").status_code == 409
        assert post(client, f"{base}/edit", draft_data()).status_code == 409
        assert client.get(f"{base}/publish").status_code == 409
        assert post(client, f"{base}/publish", {"confirm": "y"}).status_code == 409
        assert post(client, f"{base}/discard", {"confirm": "y"}).status_code == 409
    db.session.refresh(version)
    assert version.body_md == OLD_TEXT
    with nothing_written():
        assert client.get("/staff/policies/no-such-version").status_code == 404


def test_publishing_twice_publishes_once(client, login_as, staff, at_midnight):
    make_policy(body=OLD_TEXT)
    login_as(staff)
    post(client, "/staff/policies/new", draft_data())
    draft = db.session.scalars(select(PolicyVersion).where(PolicyVersion.number.is_(None))).one()
    url = f"/staff/policies/{draft.public_id}/publish"
    assert post(client, url, {"confirm": "y"}).status_code == 303
    with nothing_written():
        assert post(client, url, {"confirm": "y"}).status_code == 409
    assert db.session.scalar(select(func.count()).select_from(FanOut)) == 1


def test_publish_refused_when_the_date_came_too_close(client, login_as, staff, at_midnight):
    make_policy(body=OLD_TEXT)
    login_as(staff)
    post(client, "/staff/policies/new", draft_data())
    draft = db.session.scalars(select(PolicyVersion).where(PolicyVersion.number.is_(None))).one()
    clock.freeze(at_midnight + timedelta(days=2))
    login_as(staff)  # two days on, the first session has ended (SESSION_LIFETIME_SECONDS)
    with nothing_written():
        response = post(client, f"/staff/policies/{draft.public_id}/publish", {"confirm": "y"})
    assert response.status_code == 422
    assert b"at least 30 days in advance" in response.data
    db.session.refresh(draft)
    assert draft.published_at is None and draft.number is None


def test_discard_a_draft(client, login_as, staff, at_midnight):
    login_as(staff)
    post(client, "/staff/policies/new", draft_data())
    draft = db.session.scalars(select(PolicyVersion)).one()
    url = f"/staff/policies/{draft.public_id}/discard"
    assert post(client, url, {}).status_code == 303  # not confirmed: nothing happens
    assert db.session.scalar(select(func.count()).select_from(PolicyVersion)) == 1
    assert post(client, url, {"confirm": "y"}).status_code == 303
    assert db.session.scalar(select(func.count()).select_from(PolicyVersion)) == 0
    assert "policy.draft_discarded" in audit_actions()


def test_versions_list_shows_each_status(client, login_as, staff, at_midnight):
    make_policy(body="v1", effective_in_days=-20)
    make_policy(body="v2", effective_in_days=-2)
    make_policy(body="v3", effective_in_days=10)
    login_as(staff)
    post(client, "/staff/policies/new", draft_data())
    page = client.get("/staff/policies").get_data(as_text=True)
    statuses = re.findall(r'class="status-tag status-([a-z_]+)"', page)
    assert statuses == ["draft", "scheduled", "in_effect", "superseded"]


# PostgreSQL only (SQLite serialises writers itself, so there is no race to test there).
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_versions_published_at_the_same_moment_get_consecutive_numbers(app, policy, backend):
    """Two publications racing: the second waits for the first's number instead of both
    taking the same one (which failed one of them on the unique number)."""
    from consent_center.services.policies import publish_policy

    db.session.commit()

    def publisher(n: int, started) -> None:
        started.wait()
        publish_policy(
            actor=None,
            texts=policy_texts(f"# Policy\n\nVersion from publisher {n}.\n", f"Publisher {n}"),
            effective_at=clock.utcnow() + timedelta(days=40),
            config=app.config,
            notify=False,
        )
        started.overlap()  # the first holds its number until the other is under way
        db.session.commit()

    errors = race(app, publisher)
    assert not errors, errors
    numbers = db.session.scalars(select(PolicyVersion.number).order_by(PolicyVersion.number))
    assert list(numbers) == [1, 2, 3]


def test_staff_draft_preview_and_diff_both_languages(client, login_as, staff, at_midnight):
    make_policy(body=OLD_TEXT, body_zh=OLD_TEXT_ZH, title_zh="隐私政策", summary_zh="第一版")
    login_as(staff)
    form = client.get("/staff/policies/new").get_data(as_text=True)
    assert "我们从不出售数据。" in form  # both languages start from the text in effect
    assert 'name="body_md_zh"' in form and 'lang="zh-Hans"' in form

    preview = post(client, "/staff/policies/preview", draft_data(), htmx=True)
    fragment = preview.get_data(as_text=True)
    assert "Simplified Chinese" in fragment
    # Each language is compared with the same language of the version in effect.
    assert re.search(r'<div class="diff" lang="zh-Hans">.*<ins>.*和广告策划', fragment, re.S)
    assert re.search(r'<div class="diff" lang="en">.*<ins>.*advertising planning', fragment, re.S)
    assert '<div class="policy-body" lang="zh-Hans"><h1>隐私政策</h1>' in fragment

    assert post(client, "/staff/policies/new", draft_data()).status_code == 303
    draft = db.session.scalars(select(PolicyVersion).where(PolicyVersion.number.is_(None))).one()
    assert draft.body_md_zh == NEW_TEXT_ZH
    assert draft.summary_zh == "我们新增广告策划作为您数据的用途。"
    detail = client.get(f"/staff/policies/{draft.public_id}").get_data(as_text=True)
    assert '<dd lang="zh-Hans">我们新增广告策划作为您数据的用途。</dd>' in detail
    assert "您可以随时撤回同意。" in detail and "Not ready to publish yet" not in detail

    # The staff console in Chinese: the English words carry their language.
    staff.locale = "zh_Hans_CN"
    db.session.commit()
    chinese = client.get(f"/staff/policies/{draft.public_id}").get_data(as_text=True)
    assert '<dd lang="en">We add advertising planning as a use of your data.</dd>' in chinese


def test_a_draft_saves_without_chinese_but_publishing_needs_it(
    client, login_as, staff, at_midnight
):
    make_policy(body=OLD_TEXT)
    login_as(staff)
    english_only = draft_data(title_zh="", body_md_zh="", summary_zh="")
    preview = post(client, "/staff/policies/preview", english_only, htmx=True)
    assert "No text in this language yet" in preview.get_data(as_text=True)
    assert post(client, "/staff/policies/new", english_only).status_code == 303
    draft = db.session.scalars(select(PolicyVersion).where(PolicyVersion.number.is_(None))).one()
    detail = client.get(f"/staff/policies/{draft.public_id}").get_data(as_text=True)
    assert "Not ready to publish yet" in detail
    assert "The Simplified Chinese text is required before publishing" in detail

    with nothing_written():
        refused = post(client, f"/staff/policies/{draft.public_id}/publish", {"confirm": "y"})
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert "This draft cannot be published as it is" in page
    assert "Give the version a Simplified Chinese title before publishing." in page
    assert "Say what changed in Simplified Chinese too before publishing" in page
    db.session.refresh(draft)
    assert draft.published_at is None
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 0

    # Translated, it publishes.
    edit = post(client, f"/staff/policies/{draft.public_id}/edit", draft_data())
    assert edit.status_code == 303
    done = post(client, f"/staff/policies/{draft.public_id}/publish", {"confirm": "y"})
    assert done.status_code == 303
    db.session.refresh(draft)
    assert draft.number == 2 and draft.title_zh == "隐私政策"


def test_a_legacy_version_without_chinese_is_no_base_for_the_chinese_diff(
    client, login_as, staff, at_midnight
):
    make_policy(body=OLD_TEXT)  # published before Chinese was required
    login_as(staff)
    fragment = post(client, "/staff/policies/preview", draft_data(), htmx=True).get_data(
        as_text=True
    )
    assert "Version 1 has no text in this language to compare with." in fragment
    assert '<div class="diff" lang="en">' in fragment


def test_the_cli_publishes_through_the_staff_consoles_path(runner, tmp_path, app, at_midnight):
    """The CLI drafts and publishes with the same service calls as staff: the audit log shows
    the draft it made and its publication, and Chinese is required the same way."""
    make_policy(body=OLD_TEXT)
    english, chinese = tmp_path / "v2.md", tmp_path / "v2.zh.md"
    english.write_text(NEW_TEXT, encoding="utf-8")
    chinese.write_text(NEW_TEXT_ZH, encoding="utf-8")
    effective = (TODAY + timedelta(days=10)).isoformat()
    args = ["policy", "publish", str(english), "--effective", effective, "--summary", "Clearer"]
    refused = runner.invoke(args=args)
    assert refused.exit_code == 2
    assert "body_md_zh: The Simplified Chinese text is required" in refused.output
    assert "summary_zh:" in refused.output
    assert db.session.scalar(select(func.count()).select_from(PolicyVersion)) == 1

    done = runner.invoke(args=[*args, "--file-zh", str(chinese), "--summary-zh", "更清楚"])
    assert done.exit_code == 0, done.output
    version = db.session.scalars(select(PolicyVersion).where(PolicyVersion.number == 2)).one()
    assert (version.title_zh, version.body_md_zh, version.summary_zh) == (
        "隐私政策",
        NEW_TEXT_ZH,
        "更清楚",
    )
    entries = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action.like("policy.%")).order_by(AuditEvent.id)
    ).all()
    assert [e.action for e in entries] == ["policy.draft_created", "policy.published"]
    assert entries[1].details["draft"] == version.public_id == entries[0].details["draft"]
    assert db.session.scalars(select(FanOut)).one().cause == "policy_version:2"
