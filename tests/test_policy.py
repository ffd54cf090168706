"""Policy pages: safe rendering, versions, the readable diff, the seed text."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from consent_center import clock
from consent_center.extensions import db
from consent_center.models import PolicyVersion
from consent_center.notify.worker import drain
from consent_center.services.policy_text import (
    diff_texts,
    render_markdown,
    rendered_blocks,
    seed_text_to_markdown,
)
from tests.conftest import make_member, make_policy, publish_notice
from tests.support.writes import nothing_written

SEED = Path(__file__).resolve().parent.parent / "consent_center" / "seed" / "privacy-policy.txt"


def test_markdown_is_rendered_safely():
    html = str(render_markdown("# Title\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1))"))
    assert "<h1>Title</h1>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html


def test_policy_page_shows_current_version_and_last_updated(client):
    make_policy(body="# Privacy policy\n\nOld text.\n", effective_in_days=-30)
    make_policy(
        body="# Privacy policy\n\nCurrent text.\n", effective_in_days=-1, summary="Clarified"
    )
    make_policy(
        body="# Privacy policy\n\nFuture text.\n", effective_in_days=10, summary="Coming soon"
    )
    page = client.get("/policy").get_data(as_text=True)
    assert "Current text." in page and "Future text." not in page
    assert "Last updated:" in page and "Version 2" in page
    assert "A new version takes effect on" in page and "Coming soon" in page


def test_versions_list_and_version_diff(client):
    make_policy(body="We use data for statistics.\n\nWe never sell data.\n")
    make_policy(
        body="We use data for statistics and trend analysis.\n\nWe never sell data.\n\n"
        "New paragraph.\n",
        summary="Added trend analysis",
    )
    listing = client.get("/policy/versions").get_data(as_text=True)
    assert "Version 1" in listing and "Version 2" in listing and "Added trend analysis" in listing
    page = client.get("/policy/versions/2").get_data(as_text=True)
    assert "What changed from version 1" in page
    assert "<ins>" in page and "trend analysis" in page and "New paragraph." in page
    first = client.get("/policy/versions/1").get_data(as_text=True)
    assert "This is the first published version." in first
    with nothing_written():
        assert client.get("/policy/versions/99").status_code == 404


def test_diff_marks_words_and_paragraphs():
    blocks = diff_texts("A b c.\n\nGone.", "A x c.\n\nNew.\n\nAdded.")
    kinds = [b.kind for b in blocks]
    assert kinds[0] == "changed"
    assert ("removed", "b") in blocks[0].pieces and ("added", "x") in blocks[0].pieces
    assert "added" in kinds


def test_diff_handles_chinese_character_by_character():
    blocks = diff_texts("我们收集姓名。", "我们收集姓名和电话。")
    assert blocks[0].kind == "changed"
    assert ("added", "和电话") in blocks[0].pieces


def test_seed_policy_becomes_structured_markdown():
    title, md = seed_text_to_markdown(SEED.read_text(encoding="utf-8"))
    assert title == "Privacy policy"
    assert "## Types of Information Extracted and Collected" in md
    assert "## Contact Customer Service Center" in md
    assert "- Directly related to national security and national defense security;" in md
    html = str(render_markdown(md))
    assert html.count("<li>") == 5


def test_demo_seed_publishes_the_company_policy(runner, client):
    result = runner.invoke(args=["demo", "seed"])
    assert result.exit_code == 0 and "seeded policy version 1" in result.output
    page = client.get("/policy").get_data(as_text=True)
    assert "aftersale@autooltech.com" in page
    assert "Special Agreement on the Privacy Protection" in page
    again = runner.invoke(args=["demo", "seed"])
    assert "nothing seeded" in again.output


def test_cli_publish_enforces_notice_period(runner, tmp_path, client):
    make_policy()
    text = tmp_path / "v2.md"
    text.write_text("# Policy\n\nUpdated.\n")
    result = runner.invoke(
        args=["policy", "publish", str(text), "--effective", "2000-01-01", "--summary", "Too soon"]
    )
    assert result.exit_code == 2 and "7 days in advance" in result.output


# --- Both languages -------------------------------------------------------------------------

SEED_ZH = SEED.with_name("privacy-policy.zh.txt")
ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}


def test_chinese_seed_has_the_english_structure_block_by_block():
    """The faithful translation keeps the company's policy paragraph by paragraph: the same
    headings, paragraphs and list items in the same order, the same contact details."""
    en_title, en_md = seed_text_to_markdown(SEED.read_text(encoding="utf-8"))
    zh_title, zh_md = seed_text_to_markdown(SEED_ZH.read_text(encoding="utf-8"))
    assert (en_title, zh_title) == ("Privacy policy", "隐私政策")
    en, zh = rendered_blocks(en_md), rendered_blocks(zh_md)
    assert [b.role for b in zh] == [b.role for b in en]
    assert [b.role for b in en].count("heading") == 6 and [b.role for b in en].count("item") == 5
    for english, chinese in zip(en, zh, strict=True):
        assert re.search(r"[\u4e00-\u9fff]", chinese.text), chinese.text  # translated
        # Names, addresses and numbers stay as they are.
        for token in re.findall(r"AUTOOL|Facebook|[\w.]+@[\w.]+|[\d-]{7,}", english.text):
            assert token in chinese.text, (token, chinese.text)
    # The established terms of Chinese privacy law.
    for term in ("个人信息", "监护人", "同意", "删除", "处理", "未成年人"):
        assert term in zh_md, term


def test_the_shipped_english_seed_is_the_companys_policy():
    shared = SEED.parents[2] / "shared" / "seed-privacy-policy.txt"
    if shared.exists():  # beside a checkout of the project's shared folder
        assert shared.read_text(encoding="utf-8") == SEED.read_text(encoding="utf-8")
    assert "aftersale@autooltech.com" in SEED.read_text(encoding="utf-8")


def test_demo_seed_publishes_both_languages_and_chinese_readers_get_chinese(runner, client):
    assert runner.invoke(args=["demo", "seed"]).exit_code == 0
    version = db.session.scalars(select(PolicyVersion)).one()
    assert version.title_zh == "隐私政策" and "## 信息安全" in version.body_md_zh
    assert version.summary_zh
    page = client.get("/policy", headers=ZH).get_data(as_text=True)
    assert '<html lang="zh-Hans">' in page
    assert '<h1 lang="zh-Hans">隐私政策</h1>' in page
    assert '<div class="policy-body" lang="zh-Hans">' in page
    assert (
        "<h2>关于未成年人隐私保护的特别约定</h2>" in page
        and "<li>与国家安全、国防安全直接相关的；</li>" in page
    )
    assert "Special Agreement" not in page
    english = client.get("/policy").get_data(as_text=True)
    assert '<h1 lang="en">Privacy policy</h1>' in english and "信息安全" not in english


def test_chinese_policy_pages_show_chinese_title_text_summaries_and_diff(client):
    make_policy(
        body="# Policy\n\nWe use data for statistics.\n",
        body_zh="# 政策\n\n我们将数据用于统计。\n",
        title_zh="隐私政策",
        summary_zh="第一版",
        effective_in_days=-10,
    )
    make_policy(
        body="# Policy\n\nWe use data for statistics and trends.\n",
        body_zh="# 政策\n\n我们将数据用于统计和趋势分析。\n",
        title_zh="隐私政策",
        summary="Trends added",
        summary_zh="新增趋势分析",
        effective_in_days=-1,
    )
    make_policy(
        body="# Policy\n\nFuture.\n",
        body_zh="# 政策\n\n将来。\n",
        title_zh="隐私政策",
        summary="Coming soon",
        summary_zh="即将生效",
        effective_in_days=10,
    )
    current = client.get("/policy", headers=ZH).get_data(as_text=True)
    assert (
        "我们将数据用于统计和趋势分析。" in current and '<p lang="zh-Hans">即将生效</p>' in current
    )
    assert "Coming soon" not in current
    listing = client.get("/policy/versions", headers=ZH).get_data(as_text=True)
    for summary in ("第一版", "新增趋势分析", "即将生效"):
        assert f'lang="zh-Hans">{summary}</td>' in listing
    assert "Trends added" not in listing
    page = client.get("/policy/versions/2", headers=ZH).get_data(as_text=True)
    assert (
        '<span lang="zh-Hans">隐私政策</span>' in page
        and '<p lang="zh-Hans">新增趋势分析</p>' in page
    )
    assert re.search(r'<div class="diff" lang="zh-Hans">.*<ins>.*和趋势分析', page, re.S)
    assert "and trends" not in page
    # The labels of the diff are in the page's language.
    assert '<span class="visually-hidden" lang="zh-Hans">' in page


def test_a_version_without_chinese_is_shown_in_english_marked_as_english(client):
    make_policy(body="# Policy\n\nOld English only.\n", summary="Legacy", effective_in_days=-10)
    make_policy(body="# Policy\n\nNew English only.\n", summary="Still English")
    page = client.get("/policy/versions/2", headers=ZH).get_data(as_text=True)
    assert '<html lang="zh-Hans">' in page
    assert '<p lang="en">Still English</p>' in page
    assert '<div class="policy-body" lang="en">' in page
    assert '<div class="diff" lang="en">' in page
    listing = client.get("/policy/versions", headers=ZH).get_data(as_text=True)
    assert 'lang="en">Legacy</td>' in listing


def test_diff_compares_the_rendered_text_not_the_markdown():
    old = "## Your rights\n\n- You may *ask* for a copy;\n- You may ask for deletion.\n\nPlain."
    # Only markup changes: another bullet, another emphasis, a setext heading.
    same = (
        "Your rights\n-----------\n\n* You may **ask** for a copy;\n"
        "* You may ask for deletion.\n\nPlain."
    )
    assert {b.kind for b in diff_texts(old, same)} == {"same"}
    new = old.replace("deletion", "correction") + "\n\n- You may object."
    blocks = diff_texts(old, new)
    assert [(b.kind, b.role) for b in blocks] == [
        ("same", "heading"),
        ("same", "item"),
        ("changed", "item"),
        ("same", "paragraph"),
        ("added", "item"),
    ]
    assert blocks[0].text == "Your rights" and "*" not in blocks[1].text
    assert ("removed", "deletion") in blocks[2].pieces and ("added", "correction") in blocks[
        2
    ].pieces


def test_diff_page_shows_headings_and_list_items_as_a_reader_sees_them(client):
    make_policy(body="## Rights\n\n- Copy\n- Deletion\n")
    make_policy(body="## Rights\n\n- Copy\n- Deletion\n- Correction\n")
    page = client.get("/policy/versions/2").get_data(as_text=True)
    diff = page[page.index('<div class="diff"') :]
    assert '<p class="diff-same diff-heading"><strong>Rights</strong></p>' in diff
    assert re.search(
        r'<ul class="diff-list">\s*<li class="diff-same diff-item">Copy</li>\s*'
        r'<li class="diff-same diff-item">Deletion</li>\s*<li class="diff-added diff-item"><ins>',
        diff,
    )
    assert "##" not in diff and "- Copy" not in diff


def test_policy_notices_use_the_summary_in_each_readers_language(app, smtp):
    make_policy()
    make_member(email="en@example.com")
    make_member(email="zh@example.com", locale="zh_Hans_CN")
    publish_notice(app, summary="Clearer wording")  # Chinese summary: "Clearer wording（中文）"
    drain()
    received = {m.message["To"]: m.message for m in smtp.wait_for(2)}
    english = received["en@example.com"].get_body(("plain",)).get_content()
    chinese = received["zh@example.com"].get_body(("plain",)).get_content()
    assert "Clearer wording\n" in english and "（中文）" not in english
    assert "Clearer wording（中文）" in chinese


# --- The banner: changes after registration only -------------------------------------------


def test_a_new_member_sees_no_banner_for_the_version_they_registered_under(client, login_as):
    make_policy(effective_in_days=-3)
    clock.freeze(clock.utcnow() + timedelta(hours=1))
    member = make_member()
    login_as(member)
    assert "policy-notice" not in client.get("/me").get_data(as_text=True)


def test_a_version_pending_when_they_registered_is_announced(client, login_as, app):
    make_policy(effective_in_days=-3)
    publish_notice(app, summary="Coming change")  # takes effect in 8 days
    clock.freeze(clock.utcnow() + timedelta(hours=1))
    member = make_member(locale="zh_Hans_CN")
    login_as(member)
    page = client.get("/me").get_data(as_text=True)
    assert 'id="policy-notice"' in page
    assert '<p lang="zh-Hans">Coming change（中文）</p>' in page  # in the member's language


def test_a_version_published_after_registration_is_announced(client, login_as, app):
    make_policy(effective_in_days=-3)
    member = make_member()
    clock.freeze(clock.utcnow() + timedelta(hours=1))
    publish_notice(app, summary="Later change")
    login_as(member)
    page = client.get("/me").get_data(as_text=True)
    assert 'id="policy-notice"' in page and '<p lang="en">Later change</p>' in page
